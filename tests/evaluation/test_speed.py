"""Whole-step speed measurement (sigjax.evaluation._speed): FLOP count, and a real timed run."""

import pathlib
import sys

import jax
import pytest
from flax import nnx

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `configs` is a top-level package of the repo.

from configs import smoke  # noqa: E402
from sigjax.evaluation import _speed  # noqa: E402
from sigjax.evaluation._speed import (  # noqa: E402
    compare_train_speed,
    matmul_params,
    peak_flops,
    speed_markdown,
    step_flops,
    synthetic_batch,
    time_train_step,
)
from sigjax.training import build_model  # noqa: E402


def test_matmul_params_exclude_only_the_lookup_tables():
    config = smoke.get_config()
    model = build_model(config, vocab_size=103)
    _, params = nnx.split(model, nnx.Param)
    total = sum(x.size for x in jax.tree.leaves(params))
    lookups = model.gene_embed.embedding.value.size + model.value_embed.embedding.value.size
    assert matmul_params(model) == total - lookups


def test_step_flops_is_palm_count():
    # 2 cells x 4 tokens, 10 matmul parameters, 1 layer of width 3: 8 * (60 + 12 * 1 * 3 * 4).
    assert step_flops(10, lengths=[4, 4], layers=1, width=3) == 8 * (60 + 144)
    # Valid tokens only: cells of 4 and 2 tokens, 4 * (60 + 144) + 2 * (60 + 72).
    assert step_flops(10, lengths=[4, 2], layers=1, width=3) == 4 * 204 + 2 * 132
    assert peak_flops(jax.devices("cpu")[0]) is None  # No MFU claimed on a CPU.


def test_both_attentions_are_timed_with_the_same_config():
    config = smoke.get_config()
    result = compare_train_speed(config, steps=2, warmup=1, repeats=1)
    sig, soft = result["runs"]
    assert (sig["attention"], soft["attention"]) == ("sigmoid", "softmax")
    assert sig["params"] == soft["params"] and sig["flops_per_step"] == soft["flops_per_step"]
    assert sig["step_time_s"] > 0 and soft["step_time_s"] > 0 and sig["mfu"] is None
    assert result["sigmoid_over_softmax"] == pytest.approx(sig["step_time_s"] / soft["step_time_s"])
    assert "sigmoid / softmax step time" in speed_markdown(result)
    # One round, led by sigmoid: its ratio is the one sample pair's.
    only = sig["step_times_s"][0] / soft["step_times_s"][0]
    assert result["ratio_by_leader"] == {"sigmoid": [pytest.approx(only)], "softmax": []}
    assert f"per round: sigmoid first {only:.3f}" in speed_markdown(result)
    with pytest.raises(ValueError, match="steps: got 0"):
        time_train_step(config, steps=0)


def test_samples_alternate_and_neither_attention_always_goes_first(monkeypatch):
    # In kernel A/Bs on an H100 the variant timed first ran ~5% faster, whichever it was
    # (docs/benchmarks.md run 20): the attentions' samples alternate, and so does who leads.
    calls = []

    def fake_prepared(config, *, warmup, padding):
        name = config.model.attention

        def sample(steps):
            calls.append(name)
            return {"sigmoid": 1.0, "softmax": 2.0}[name] + len(calls) / 100

        def record(samples):
            return {"attention": name, "step_time_s": float(sorted(samples)[len(samples) // 2])}

        return sample, record

    monkeypatch.setattr(_speed, "_prepared_step", fake_prepared)
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_enable_cublaslt=true")
    result = compare_train_speed(smoke.get_config(), steps=1, warmup=1, repeats=4)
    assert result["xla_flags"] == "--xla_gpu_enable_cublaslt=true"  # Recorded with the result.
    assert calls == ["sigmoid", "softmax", "softmax", "sigmoid"] * 2
    sig, soft = result["runs"]
    assert result["sigmoid_over_softmax"] == pytest.approx(sig["step_time_s"] / soft["step_time_s"])
    # Samples 1..8 in call order: rounds 1 and 3 led by sigmoid, 2 and 4 by softmax.
    by_leader = result["ratio_by_leader"]
    assert by_leader["sigmoid"] == pytest.approx([1.01 / 2.02, 1.05 / 2.06])
    assert by_leader["softmax"] == pytest.approx([1.04 / 2.03, 1.08 / 2.07])
    with pytest.raises(ValueError, match="repeats: got 0"):
        compare_train_speed(smoke.get_config(), repeats=0)


def test_padded_batches_pad_like_the_loader():
    config = smoke.get_config()
    config.data.batch_size, config.data.max_len = 64, 100
    dense = synthetic_batch(config, vocab_size=50)
    assert (dense["lengths"] == 100).all() and (dense["genes"] > 0).all()
    batch = synthetic_batch(config, vocab_size=50, padding=0.25)
    lengths = batch["lengths"]
    assert lengths.min() >= 50 and lengths.max() <= 100 and lengths.min() < lengths.max()
    assert abs(lengths.mean() / 100 - 0.75) < 0.01  # A quarter padding.
    pad = batch["genes"] == 0
    assert (pad.sum(1) == 100 - lengths).all()  # Padding exactly past each length...
    assert not batch["values"][pad].any() and not batch["targets"][pad].any()  # ...and zeroed.
    assert (batch["genes"][:, 0] == 1).all()
    with pytest.raises(ValueError, match="padding: got 0.6"):
        synthetic_batch(config, vocab_size=50, padding=0.6)


def test_padded_timing_counts_valid_tokens():
    config = smoke.get_config()
    sig = time_train_step(config, steps=1, warmup=1, repeats=1, padding=0.4)
    assert abs(sig["valid_share"] - 0.6) < 0.05  # 40% padding.
    b, length = config.data.batch_size, config.data.max_len
    assert sig["tokens_per_s"] == pytest.approx(
        sig["valid_share"] * b * length / sig["step_time_s"]
    )
