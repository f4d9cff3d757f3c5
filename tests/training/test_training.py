"""train_and_evaluate: metrics, checkpoints, resume, non-finite stop, sharding, the CLI."""

import json
import logging
import re
import shutil

import jax
import numpy as np
import pytest
from flax import nnx
from train_helpers import SYNTHETIC, cli, smoke_config, with_frozen

from sigjax.data import make_datasets
from sigjax.training import (
    NonFiniteError,
    _steps,
    evaluate_loss,
    load_model,
    make_mesh,
    train_and_evaluate,
)
from sigjax.training._steps import make_setup

CONTRACT_KEYS = {
    "step",
    "train/loss",
    "train/grad_norm",
    "train/param_norm",
    "train/update_norm",
    "train/lr",
    "grad_norm/block_0/attention",
    "grad_norm/block_0/mlp",
    "grad_norm/embed",
    "update_ratio/block_0/attention",
    "update_ratio/block_0/mlp",
    "update_ratio/embed",
    "update_ratio/head",
    "perf/tokens_per_sec",
    "perf/step_time",
}


def rows(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def params_of(workdir, step=None):
    model, _, _ = load_model(workdir, step)
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Param))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """configs/smoke.py, 4 steps on PBMC, checkpoints at 2 and 4, validation at 2 and 4."""
    workdir = tmp_path_factory.mktemp("smoke")
    config = smoke_config(**{"mesh.data": 1, "train.eval_every": 2, "train.keep_checkpoints": 5})
    result = train_and_evaluate(config, workdir)
    return config, workdir, result


def test_smoke_run_writes_the_workdir_contract(smoke_run):
    config, workdir, result = smoke_run
    assert {p.name for p in workdir.iterdir()} >= {
        "config.json",
        "vocab.json",
        "metrics.jsonl",
        "tensorboard",
        "checkpoints",
    }
    assert any((workdir / "tensorboard").iterdir())
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["embed_dim"] == config.model.embed_dim
    log = rows(workdir)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    for r in log:
        assert CONTRACT_KEYS <= set(r), CONTRACT_KEYS - set(r)
        assert all(np.isfinite(v) for v in r.values())
    assert "val/loss" in log[1] and "val/loss" in log[3] and "val/loss" not in log[0]
    # Warmup over 2 steps: lr 0 at step 0 (no update), then the peak.
    assert log[0]["train/lr"] == 0.0 and log[0]["train/update_norm"] == 0.0
    assert log[2]["train/lr"] == pytest.approx(config.train.learning_rate, rel=1e-5)
    assert log[1]["train/update_norm"] > 0
    # Update/parameter ratios per group: 0 while the learning rate is 0, then every group moves.
    ratios = [k for k in log[0] if k.startswith("update_ratio/")]
    assert sorted(ratios) == sorted(k for k in CONTRACT_KEYS if k.startswith("update_ratio/"))
    assert all(log[0][k] == 0.0 for k in ratios)
    assert all(0 < r[k] < 1 for r in log[1:] for k in ratios)
    # The global norm is the norm of the groups (they cover every parameter).
    groups = [v for k, v in log[0].items() if k.startswith("grad_norm/")]
    assert np.sqrt(np.sum(np.square(groups))) == pytest.approx(log[0]["train/grad_norm"], rel=1e-4)
    assert result["step"] == 4 and result["val/loss"] == log[3]["val/loss"]
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [
        2,
        4,
    ]


def test_load_model_and_evaluate_loss_reproduce_the_logged_val_loss(smoke_run):
    config, workdir, _ = smoke_run
    model, loaded_config, vocab = load_model(workdir)
    _, val_cells, _ = make_datasets(loaded_config.data, vocab=vocab)
    assert evaluate_loss(model, val_cells, loaded_config) == pytest.approx(
        rows(workdir)[3]["val/loss"], rel=1e-5
    )
    early = params_of(workdir, step=2)
    late = params_of(workdir)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(early), jax.tree.leaves(late), strict=True)
    )
    with pytest.raises(FileNotFoundError, match="step"):
        load_model(workdir, step=3)


def test_resume_continues_the_same_trajectory(smoke_run, tmp_path):
    config, workdir, _ = smoke_run
    resumed = tmp_path / "resumed"
    shutil.copytree(workdir, resumed)
    shutil.rmtree(resumed / "checkpoints" / "4")  # As if the run had died after step 2's save.
    train_and_evaluate(config, resumed)
    assert rows(resumed) == [
        {k: v for k, v in r.items() if not k.startswith("perf/")}
        | {k: v for k, v in s.items() if k.startswith("perf/")}
        for r, s in zip(rows(workdir), rows(resumed), strict=True)
    ]
    a, b = params_of(workdir), params_of(resumed)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_vocabulary_mismatch_on_resume_is_refused_and_keeps_the_run(smoke_run, tmp_path):
    config, workdir, _ = smoke_run
    other = tmp_path / "other"
    shutil.copytree(workdir, other)
    before = sorted(p.name for p in (other / "checkpoints").iterdir())
    # Other data in the config is another config; the same config whose file now holds other
    # genes is a vocabulary mismatch (here: a token dropped from the saved vocabulary).
    bad = smoke_config(**SYNTHETIC, **{"mesh.data": 1})
    with pytest.raises(ValueError, match="data.dataset: saved 'pbmc68k_reduced', got 'synthetic'"):
        train_and_evaluate(bad, other)
    saved = json.loads((other / "vocab.json").read_text())
    saved["tokens"] = saved["tokens"][:-1]
    (other / "vocab.json").write_text(json.dumps(saved))
    vocab_before = (other / "vocab.json").read_text()
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        train_and_evaluate(config, other)
    assert sorted(p.name for p in (other / "checkpoints").iterdir()) == before
    assert (other / "vocab.json").read_text() == vocab_before
    changed = smoke_config(**{"mesh.data": 1, "model.embed_dim": 64})
    with pytest.raises(ValueError, match="model.embed_dim: saved 32, got 64"):
        train_and_evaluate(changed, other)


def test_run_saved_before_a_model_field_existed_still_resumes(tmp_path):
    # A run of the first release's model: no hybrid norm (today's default is on).
    config = smoke_config(**{**SYNTHETIC, "mesh.data": 1, "model.attention_output_norm": False})
    old = tmp_path / "old"
    train_and_evaluate(config, old)
    saved = json.loads((old / "config.json").read_text())
    del saved["model"]["attention_output_norm"]  # As written before the field was added.
    saved["model"]["implementation"] = "auto"  # The automatic choice's spelling before None.
    (old / "config.json").write_text(json.dumps(saved))
    train_and_evaluate(config, old)  # Resumes at its last step: the default keeps the old model.
    load_model(old)  # And the old spelling loads for inference.
    with pytest.raises(ValueError, match="model.attention_output_norm: saved False, got True"):
        train_and_evaluate(
            smoke_config(**{**SYNTHETIC, "mesh.data": 1, "model.attention_output_norm": True}), old
        )


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = smoke_config(
        **SYNTHETIC,
        **{
            "mesh.data": 1,
            "train.num_steps": 8,
            "train.learning_rate": 1e30,
            "train.warmup_steps": 1,
            "train.grad_clip_norm": 0.0,
            "train.checkpoint_every": 1,
            "train.keep_checkpoints": 20,
            "train.eval_every": 0,
        },
    )
    with pytest.raises(NonFiniteError, match=r"at step (\d+)") as info:
        train_and_evaluate(config, tmp_path)
    bad_step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
    assert 1 < bad_step <= 8
    assert "\n" not in str(info.value)
    log = rows(tmp_path)
    assert log[-1]["step"] == bad_step and not np.isfinite(
        log[-1]["train/loss"] + log[-1]["train/grad_norm"]
    )
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps and steps[-1] == bad_step - 1
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params_of(tmp_path)))


def test_no_validation_cells_logs_no_val_loss(tmp_path, caplog):
    # 4 cells at val_fraction 0.1 hold none out: a val/loss of 0.0 would look perfect.
    config = smoke_config(
        **{
            **SYNTHETIC,
            "mesh.data": 1,
            "data.synthetic.n_cells": 4,
            "data.batch_size": 2,
            "data.val_fraction": 0.1,
            "train.num_steps": 2,
            "train.eval_every": 1,
        },
    )
    with caplog.at_level(logging.WARNING, logger="sigjax.data"):
        result = train_and_evaluate(config, tmp_path)
    assert "data.val_fraction=0.1 of 4 cells holds out none" in caplog.text
    assert result["val/loss"] is None
    assert [r["step"] for r in rows(tmp_path)] == [1, 2]
    assert not any("val/loss" in r for r in rows(tmp_path))


def test_the_loop_warns_by_name_about_a_frozen_sub_block(tmp_path, monkeypatch, caplog):
    config = smoke_config(
        **SYNTHETIC,
        **{
            "mesh.data": 1,
            "model.num_layers": 2,
            "train.num_steps": 4,
            "train.log_every": 2,
            "train.eval_every": 0,
            "train.checkpoint_every": 4,
        },
    )
    make_optimizer = _steps.make_optimizer

    def block_0_mlp_frozen(tc, peak=None):  # Block 0's MLP (and its LayerNorm) gets no update.
        tx, schedule = make_optimizer(tc, peak)
        return with_frozen(tx, "blocks/0/mlp"), schedule

    monkeypatch.setattr(_steps, "make_optimizer", block_0_mlp_frozen)
    with caplog.at_level(logging.WARNING, logger="sigjax.training._train"):
        train_and_evaluate(config, tmp_path / "frozen")
    warned = [r.getMessage() for r in caplog.records if "frozen sub-blocks" in r.getMessage()]
    # Logged steps 2 and 4, once each; only block 0's MLP is named.
    assert [m.split(":")[0] for m in warned] == ["step 2", "step 4"]
    assert all("block_0/mlp (" in m and "block_1" not in m for m in warned)
    assert all(r["update_ratio/block_0/mlp"] == 0 for r in rows(tmp_path / "frozen"))
    caplog.clear()
    monkeypatch.setattr(_steps, "make_optimizer", make_optimizer)
    with caplog.at_level(logging.WARNING, logger="sigjax.training._train"):
        train_and_evaluate(config, tmp_path / "healthy")
    assert not [r for r in caplog.records if "frozen" in r.getMessage()]


def test_fsdp_and_data_parallel_mesh_gives_the_same_loss(tmp_path):
    assert jax.device_count() == 8, "tests/conftest.py sets 8 host devices"
    overrides = {
        **SYNTHETIC,
        "train.num_steps": 3,
        "train.eval_every": 0,
        "train.checkpoint_every": 3,
    }
    one = smoke_config(**overrides, **{"mesh.data": 1, "mesh.fsdp": 1})
    eight = smoke_config(**overrides, **{"mesh.data": 4, "mesh.fsdp": 2})
    train_and_evaluate(one, tmp_path / "one")
    train_and_evaluate(eight, tmp_path / "eight")
    for a, b in zip(rows(tmp_path / "one"), rows(tmp_path / "eight"), strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-5)
        assert b["train/grad_norm"] == pytest.approx(a["train/grad_norm"], rel=1e-4)
    for x, y in zip(
        jax.tree.leaves(params_of(tmp_path / "one")),
        jax.tree.leaves(params_of(tmp_path / "eight")),
        strict=True,
    ):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    # The parameters really are FSDP-sharded on the (4, 2) mesh.
    mesh = make_mesh(eight.mesh)
    with jax.set_mesh(mesh):
        _, state = make_setup(eight, 200, mesh)
    specs = {str(x.sharding.spec) for x in jax.tree.leaves(state["params"])}
    assert any("fsdp" in s for s in specs)
    kernel = state["params"]["blocks"][0]["mlp"]["up"]["kernel"][...]
    assert kernel.addressable_shards[0].data.shape[1] == kernel.shape[1] // 2
    with pytest.raises(ValueError, match="mesh"):
        make_mesh(smoke_config(**{"mesh.data": 5, "mesh.fsdp": 2}).mesh)


def test_cli_overrides_and_one_line_errors(tmp_path):
    env = {"JAX_PLATFORMS": "cpu"}
    bad = cli(
        ["--config=configs/smoke.py", f"--workdir={tmp_path / 'bad'}", "--config.model.nope=1"],
        env=env,
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("error:")
    assert "nope" in bad.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "bad").exists()
    missing = cli(["--config=configs/nope.py", f"--workdir={tmp_path / 'bad'}"], env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]  # One line.
    assert "configs/nope.py" in missing.stderr
    workdir = tmp_path / "run"
    args = [
        "--config=configs/smoke.py",
        f"--workdir={workdir}",
        "--config.train.num_steps=1",
        "--config.model.attention=softmax",
        "--config.model.pooling=mean",
        "--config.data.batch_size=8",
        *(f"--config.{k}={v}" for k, v in SYNTHETIC.items()),
    ]
    ok = cli(args, env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["attention"] == "softmax" and saved["model"]["pooling"] == "mean"
    assert saved["train"]["num_steps"] == 1 and saved["data"]["dataset"] == "synthetic"
    assert [r["step"] for r in rows(workdir)] == [1]
    # A bad value is a one-line error with a non-zero exit too.
    wrong = cli([args[0], f"--workdir={tmp_path / 'wrong'}", "--config.model.pooling=max"], env=env)
    assert wrong.returncode != 0
    assert wrong.stderr.strip().splitlines()[-1].startswith("error: model.pooling")


def test_fsdp_spec_shards_the_largest_divisible_axis():
    from jax.sharding import PartitionSpec as P

    from sigjax.training import fsdp_spec

    assert fsdp_spec((64, 256), 2) == P(None, "fsdp")
    assert fsdp_spec((256, 30), 4) == P("fsdp", None)
    assert fsdp_spec((6, 9), 4) == P()
    assert fsdp_spec((), 2) == P()
    assert fsdp_spec((64, 256), 1) == P()
