"""Tests of the kernel benchmark on tiny CPU shapes (Pallas interpret mode); budget < 60 s."""

import json

import jax
import numpy as np
import pytest

import sigjax
from eval.kernels import cli, measure, report, run, specs


@pytest.mark.parametrize(
    "batch,seq_len,padding", [(16, 1024, 0.25), (8, 2048, 0.5), (1, 16384, 0.25)]
)
def test_sequence_lengths_match_the_padding(batch, seq_len, padding):
    lens = specs.sequence_lengths(batch, seq_len, padding, seed=3)
    assert lens.dtype == np.int32 and lens.shape == (batch,)
    assert lens.min() >= 1 and lens.max() <= seq_len
    assert lens.sum() == round(batch * seq_len * (1 - padding))
    if batch > 1:
        assert len(set(lens.tolist())) > 1  # Drawn, not all equal.
    np.testing.assert_array_equal(lens, specs.sequence_lengths(batch, seq_len, padding, seed=3))
    np.testing.assert_array_equal(specs.sequence_lengths(4, 64, 0.0), [64] * 4)


def test_sequence_lengths_reject_bad_padding():
    with pytest.raises(ValueError, match="padding: got 1.0"):
        specs.sequence_lengths(4, 64, 1.0)
    with pytest.raises(ValueError, match="padding: got -0.1"):
        specs.sequence_lengths(4, 64, -0.1)


def test_flops_count_valid_tokens_only():
    # 4 N H sum len^2 = 4 * 2 * 4 * (9 + 25).
    assert specs.attention_flops(2, 4, [3, 5], False, "fwd") == 1088
    assert specs.attention_flops(2, 4, [3, 5], True, "fwd") == 544
    assert specs.attention_flops(2, 4, [3, 5], True, "fwdbwd") == 544 * 3.5
    with pytest.raises(ValueError, match="mode: got 'bwd'"):
        specs.attention_flops(2, 4, [3], False, "bwd")


def test_benchmark_shapes_follow_tokens_and_hidden():
    shapes = specs.benchmark_shapes([64, 128], [1024, 16384], [0.0, 0.5], [False], ["fwd"])
    assert len(shapes) == 8
    for s in shapes:
        assert s.heads * s.head_dim == 2048 and s.batch * s.seq_len == 16384
        assert s.padded == (s.padding > 0)
    with pytest.raises(ValueError, match="head_dims: got 96"):
        specs.benchmark_shapes([96], [1024], [0.0], [False], ["fwd"])


def test_memory_groups_never_follow_a_larger_footprint():
    # One process per head dim, T ascending: its peak memory never goes down, so H=128 at 4K
    # after H=64 at 16K would report H=64's peak.
    shapes = specs.memory_shapes([64, 128], [16384, 4096, 8192], hidden=2048, dtype="bfloat16")
    groups = specs.memory_groups(shapes)
    assert [[(s.head_dim, s.seq_len) for s in g] for g in groups] == [
        [(64, 4096), (64, 8192), (64, 16384)],
        [(128, 4096), (128, 8192), (128, 16384)],
    ]
    assert [len(g) for g in specs.memory_groups(shapes, fresh=True)] == [1] * 6


def test_parse_args_quick_and_tune():
    args = cli.parse_args(["tune", "--quick", "--out", "x", "--causal", "both", "--seq_lens", "64"])
    assert args.tune and args.quick and args.causal == [False, True]
    assert args.seq_lens == [64] and args.head_dims == [32] and args.hidden == 64
    full = cli.parse_args(["--out", "x"])
    assert not full.tune and full.head_dims == [64, 128] and full.tokens == 16384
    assert full.seq_lens == [1024, 2048, 4096, 8192, 16384]
    with pytest.raises(SystemExit):
        cli.parse_args(["--out", "x", "--impls", "pallas,flash"])


def _bad_backward_pallas(monkeypatch, fwd_factor=1.0, grad_factor=1.0):
    """Stands in a wrong 'pallas' implementation: output x fwd_factor, gradients x grad_factor."""
    original = sigjax.sigmoid_attention

    def fake(
        q, k, v, bias=None, *, implementation=None, exact_sigmoid=False, kernel_config=None, **kw
    ):
        if implementation != "pallas":
            return original(q, k, v, bias, implementation=implementation, **kw)
        out = original(q, k, v, bias, implementation="xla", **kw)
        # Forward value unchanged by the second term; its gradient adds (grad_factor - 1) x.
        extra = (grad_factor - 1) * (out - jax.lax.stop_gradient(out))
        return (out * fwd_factor + extra).astype(out.dtype)

    monkeypatch.setattr(sigjax, "sigmoid_attention", fake)


@pytest.mark.parametrize(
    "mode,fwd_factor,grad_factor,bad", [("fwd", 1.1, 1.0, "out"), ("fwdbwd", 1.0, 1.5, "dq")]
)
def test_check_fails_on_a_wrong_kernel(monkeypatch, mode, fwd_factor, grad_factor, bad):
    _bad_backward_pallas(monkeypatch, fwd_factor, grad_factor)
    (shape,) = specs.benchmark_shapes([32], [32], [0.5], [True], [mode], tokens=64, hidden=64)
    rec = measure.measure("pallas", shape, reps=2, warmup=1, tol=3e-2)
    assert rec["status"] == "wrong" and not rec["correct"]
    assert rec["max_rel_err"][bad] > 0.05
    if mode == "fwdbwd":
        assert rec["max_rel_err"]["out"] < 3e-2  # The forward is right; only gradients are not.
        assert set(rec["max_rel_err"]) == {"out", "dq", "dk", "dv"}
    good = measure.measure("xla", shape, reps=2, warmup=1, tol=3e-2)
    assert good["status"] == "ok" and good["worst_rel_err"] < 3e-2
    md = report.markdown_report({}, [rec, good])
    assert "WRONG" in md and "worst relative error" in md


def test_benchmark_run_writes_json_markdown_png(tmp_path):
    out = tmp_path / "bench"
    argv = ["--quick", "--out", str(out), "--seq_lens", "32", "--padding", "0,0.5",
            "--causal", "0", "--modes", "fwd", "--impls", "pallas,xla,cudnn,triton_sigmoid",
            "--memory_impls", "xla", "--memory_seq_lens", "16,32"]  # fmt: skip
    cli.main(argv)
    data = json.loads((out / "kernels.json").read_text())
    assert data["jax"] == jax.__version__ and data["device"] and data["date"]
    times = [r for r in data["results"] if r["kind"] == "time"]
    jax_recs = [r for r in times if r["impl"] != "triton_sigmoid"]
    assert len(jax_recs) == 3 * 2  # impls x paddings
    for r in jax_recs:
        assert r["status"] == "ok", r
        assert r["worst_rel_err"] < 3e-2 and r["time_s"] > 0
        assert r["tflops"] == pytest.approx(r["flops"] / r["time_s"] / 1e12)
        assert r["flops"] == specs.attention_flops(r["heads"], r["head_dim"], r["lengths"],
                                                r["causal"], r["mode"])  # fmt: skip
        assert r["valid_tokens"] == sum(r["lengths"])
    padded = [r for r in jax_recs if r["padding"] == 0.5]
    assert all(r["valid_fraction"] == pytest.approx(0.5, abs=0.02) for r in padded)
    cudnn = [r for r in jax_recs if r["impl"] == "cudnn"]
    assert all(r["impl_ran"].startswith("xla softmax (cudnn refused") for r in cudnn)
    # No torch here: TritonSigmoid is recorded as unavailable, with the reason, not dropped.
    triton = [r for r in times if r["impl"] == "triton_sigmoid"]
    assert len(triton) == 2 and all(r["status"] == "unavailable" for r in triton)
    assert data["triton_sigmoid"]["available"] is False and data["triton_sigmoid"]["reason"]
    mem = sorted((r for r in data["results"] if r["kind"] == "memory"), key=lambda r: r["seq_len"])
    assert [r["seq_len"] for r in mem] == [16, 32] and all(r["status"] == "ok" for r in mem)
    assert mem[1]["compiled_bytes"] > mem[0]["compiled_bytes"] > 0
    md = (out / "kernels.md").read_text()
    assert "## fwd TFLOPS" in md and "pallas/cudnn" in md
    assert "Peak device memory" in md and "cudnn fell back" in md
    # The pad/dense column holds pallas time at 50% padding over its unpadded time.
    table = {(r["padding"], r["mode"]): r for r in jax_recs if r["impl"] == "pallas"}
    ratio = table[(0.5, "fwd")]["time_s"] / table[(0.0, "fwd")]["time_s"]
    assert f"| {ratio:.2f} |" in md
    assert (out / "kernels.png").read_bytes()[:4] == b"\x89PNG"


def test_implementations_are_timed_in_rounds_of_alternating_order(tmp_path, monkeypatch):
    # On an H100 the variant timed first ran ~5% faster, whichever it was (docs/benchmarks.md
    # run 20): a shape's implementations are timed in rounds, the order reversed every other one,
    # and each one's samples pooled.
    calls = []

    def fake_time(fn, args, *, reps, warmup, min_sample_s):
        calls.append(fn)
        return {"samples_s": [0.001 * (1 + len(calls))] * reps, "inner": 1}

    monkeypatch.setattr(run, "time_callable", fake_time)
    cli.main(["--quick", "--out", str(tmp_path), "--seq_lens", "32", "--padding", "0",
              "--causal", "0", "--modes", "fwd", "--impls", "pallas,xla", "--head_dims", "16",
              "--memory_impls", "", "--reps", "4", "--rounds", "3"])  # fmt: skip
    a, b = calls[0], calls[1]
    assert a is not b and calls == [a, b, b, a, a, b]
    data = json.loads((tmp_path / "kernels.json").read_text())
    recs = {r["impl"]: r for r in data["results"] if r["kind"] == "time"}
    # 2 samples per round (ceil(4 / 3)); pallas's rounds were calls 1, 4, 5; xla's 2, 3, 6.
    assert recs["pallas"]["samples_s"] == pytest.approx([0.002] * 2 + [0.005] * 2 + [0.006] * 2)
    assert recs["pallas"]["time_s"] == pytest.approx(0.005) and recs["pallas"]["rounds"] == 3
    assert recs["xla"]["time_s"] == pytest.approx(0.004) and recs["xla"]["reps"] == 6


def test_hopper_impls_are_skipped_where_no_hopper_kernel_runs(tmp_path):
    # Else the Triton kernels' time would be reported under the Hopper name (head dim 16 here).
    cli.main(["--quick", "--out", str(tmp_path), "--head_dims", "16", "--seq_lens", "32",
              "--padding", "0", "--causal", "0", "--modes", "fwdbwd",
              "--impls", "pallas_hopper,pallas_mosaic,pallas", "--memory_impls", ""])  # fmt: skip
    data = json.loads((tmp_path / "kernels.json").read_text())
    recs = {r["impl"]: r for r in data["results"] if r["kind"] == "time"}
    assert recs["pallas"]["status"] == "ok"
    for impl in ("pallas_hopper", "pallas_mosaic"):
        assert recs[impl]["status"] == "skipped"
        assert recs[impl]["skip_reason"].startswith("no Hopper kernel: head dim 16")


def test_run_records_the_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_enable_triton_gemm=false")
    meta = report.run_meta(["--head_dims=64"])
    assert meta["xla_flags"] == "--xla_gpu_enable_triton_gemm=false"
    assert "- XLA_FLAGS: `--xla_gpu_enable_triton_gemm=false`" in report.markdown_report(meta, [])
    monkeypatch.delenv("XLA_FLAGS")
    assert "XLA_FLAGS" not in report.markdown_report(report.run_meta([]), [])


def test_markdown_ratio_columns():
    def rec(impl, pad, causal, time_s, mode="fwd"):
        return {"kind": "time", "impl": impl, "head_dim": 64, "heads": 32, "seq_len": 1024,
                "batch": 16, "padding": pad, "causal": causal, "mode": mode, "status": "ok",
                "time_s": time_s, "tflops": 1.0 / time_s}  # fmt: skip

    records = [rec("pallas", 0.0, False, 2.0), rec("cudnn", 0.0, False, 4.0),
               rec("pallas", 0.5, False, 1.0), rec("pallas", 0.0, True, 1.5),
               rec("triton_sigmoid", 0.0, False, 3.0)]  # fmt: skip
    md = report.markdown_report({"device": "test"}, records)
    rows = {line.split("|")[4].strip() + line.split("|")[5].strip(): line.split("|")
            for line in md.splitlines() if line.startswith("| 64 ")}  # fmt: skip
    # Columns: H T B pad causal pallas xla? ... : find by header.
    header = next(line for line in md.splitlines() if line.startswith("| H "))
    cols = [c.strip() for c in header.split("|")]
    dense = [c.strip() for c in rows["0.000"]]
    assert dense[cols.index("pallas/cudnn")] == "2.00"  # 0.5 / 0.25 TFLOPS.
    assert dense[cols.index("pallas/triton")] == "1.50"
    padded = [c.strip() for c in rows["0.500"]]
    assert padded[cols.index("pad/dense time")] == "0.50"
    causal = [c.strip() for c in rows["0.001"]]
    assert causal[cols.index("causal/full time")] == "0.75"


def test_budget_exhausted_skips_and_still_writes(tmp_path):
    cli.main(["--quick", "--out", str(tmp_path), "--budget_s", "0", "--impls", "pallas,xla"])
    data = json.loads((tmp_path / "kernels.json").read_text())
    assert data["results"] and all(r["status"] == "skipped" for r in data["results"])
    assert "time budget" in (tmp_path / "kernels.md").read_text()


def test_tune_quick_picks_a_checked_candidate(tmp_path):
    result = cli.main(["tune", "--quick", "--out", str(tmp_path), "--seq_lens", "32",
                      "--padding", "0", "--causal", "0", "--modes", "fwd"])  # fmt: skip
    saved = json.loads((tmp_path / "tune.json").read_text())
    assert saved["best"] == json.loads(json.dumps(result["best"]))
    cands = [r for r in saved["results"] if r["kind"] == "tune"]
    assert len(cands) >= 3 and {r["block_q"] for r in cands} >= {16, 32}
    (best,) = saved["best"]
    ok = [r for r in cands if r["status"] == "ok"]
    assert all(r["worst_rel_err"] < 3e-2 for r in ok)
    assert best["tflops"] == max(r["tflops"] for r in ok)
    # The best configuration is merged into a JSON table (under OUT with --quick), keyed by
    # (head dim, dtype, length bucket).
    table = saved["table"]
    assert table["path"] == str(tmp_path / "cpu.json")
    (entry,) = json.loads((tmp_path / "cpu.json").read_text())["entries"]
    assert (entry["head_dim"], entry["dtype"], entry["max_seq_len"]) == (32, "bfloat16", 32)
    assert entry["config"]["block_q"] == best["config"]["block_q"]
    assert entry == table["entries"][0]
