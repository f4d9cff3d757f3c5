"""Times TritonSigmoid (PyPI `triton-sigmoid`: torch + triton) on the kernel benchmark's shapes.

Run by `eval.kernels.peers` as a subprocess with the same python (torch and JAX never share a
process):

  python eval/kernels/_triton_sigmoid_runner.py JOB.json

JOB.json: {"tasks": [{"id", "kind": "time"|"memory", "head_dim", "heads", "seq_len", "batch",
"causal", "mode", "dtype", "lengths", ...}], "reps", "warmup", "tol", "min_sample_s", "deadline"}.
Prints JSON lines: first {"available": true, versions...} or {"available": false, "reason"}, then
one {"id", "status", ...} per task. It imports neither sigjax nor JAX, so it runs by file path.

TritonSigmoid's API (read from the 0.1.2 wheel): `sigmoid_attention(q, k, v, is_causal, scale,
sigmoid_bias, score_mod)` for dense batches and `sigmoid_attention_padded(q, k, v, seq_lens_k,
seq_lens_q, is_causal, scale, sigmoid_bias, score_mod)` for trailing padding, both [B, T, N, H].
Lengths are int32 [B] tensors; padded query rows come out zero. With sigmoid_bias=None the bias is
-log(T) (dense) or -log(seq_lens_k) (padded), the same default as sigjax; a float sigmoid_bias is
one scalar for the whole batch; score_mod [B, S] is a per-key additive logit without gradient.
Its sigmoid is tanh.approx unless TRITON_SIGMOID_ACCURATE=1 is set before import.
"""

import json
import math
import sys
import time

import numpy as np


def _reference(torch, q, k, v, lens, causal):
    """float32 sigmoid attention with sigjax's definition, on [B, T, N, H] tensors."""
    t, h = q.shape[1], q.shape[3]
    logits = torch.einsum("btnh,bsnh->bnts", q, k) / math.sqrt(h)
    logits = logits - torch.log(lens.clamp(min=1).float())[:, None, None, None]
    idx = torch.arange(t, device=q.device)
    valid = (idx[None, :, None] < lens[:, None, None]) & (idx[None, None, :] < lens[:, None, None])
    if causal:
        valid = valid & (idx[None, None, :] <= idx[None, :, None])
    weights = torch.where(valid[:, None], torch.sigmoid(logits), 0.0)
    return torch.einsum("bnts,bsnh->btnh", weights, v)


def _inputs(torch, task, seed=1):
    dims = (task["batch"], task["seq_len"], task["heads"], task["head_dim"])
    gen = torch.Generator(device="cuda").manual_seed(seed)
    dtype = getattr(torch, task["dtype"])
    q, k, v, do = (
        torch.randn(dims, device="cuda", dtype=torch.float32, generator=gen).to(dtype)
        for _ in range(4)
    )
    lens = torch.tensor(np.asarray(task["lengths"], np.int32), device="cuda")
    return q, k, v, lens, do


def _step_fn(torch, ts, task, q, k, v, lens, do):
    """A callable running the forward (and backward) once; returns the output tensors."""
    padded = min(task["lengths"]) < task["seq_len"]
    causal = bool(task["causal"])

    def fwd(q, k, v):
        if padded:
            return ts.sigmoid_attention_padded(
                q, k, v, seq_lens_k=lens, seq_lens_q=lens, is_causal=causal
            )
        return ts.sigmoid_attention(q, k, v, is_causal=causal)

    if task["mode"] == "fwd":
        return lambda: (fwd(q, k, v),)
    leaves = [x.detach().requires_grad_(True) for x in (q, k, v)]

    def fwdbwd():
        out = fwd(*leaves)
        return (out, *torch.autograd.grad(out, leaves, do))

    return fwdbwd


def _check(torch, task, q, k, v, lens, do, outputs, tol, batch=2, heads=4):
    """Errors of the outputs against the float32 reference on the first sequences and heads."""
    nb, nh = min(batch, task["batch"]), min(heads, task["heads"])
    sl = lambda x: x[:nb, :, :nh].float().detach()  # noqa: E731
    leaves = [sl(x).requires_grad_(task["mode"] == "fwdbwd") for x in (q, k, v)]
    ref = _reference(torch, *leaves, lens[:nb], bool(task["causal"]))
    refs = [ref]
    if task["mode"] == "fwdbwd":
        refs += list(torch.autograd.grad(ref, leaves, sl(do)))
    abs_err, rel_err = {}, {}
    for name, got, want in zip(("out", "dq", "dk", "dv"), outputs, refs, strict=False):
        got, want = sl(got), want.detach()
        finite = bool(torch.isfinite(got).all())
        diff = float((got - want).abs().max()) if finite else math.inf
        abs_err[name] = diff
        rel_err[name] = diff / max(float(want.abs().max()), 1e-30)
    worst = max(rel_err.values())
    return {
        "max_abs_err": abs_err,
        "max_rel_err": rel_err,
        "worst_rel_err": worst,
        "tol": tol,
        "check_slice": [nb, nh],
        "correct": bool(worst <= tol),
    }


def _time(torch, step, reps, warmup, min_sample_s):
    for _ in range(warmup):  # Also runs TritonSigmoid's autotuning for this shape.
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize()
    single = time.perf_counter() - t0
    inner = int(min(100, max(1, math.ceil(min_sample_s / max(single, 1e-9)))))
    samples = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            step()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / inner)
    return {
        "time_s": float(np.median(samples)),
        "time_min_s": float(np.min(samples)),
        "time_max_s": float(np.max(samples)),
        "reps": reps,
        "inner": inner,
    }


def _run_task(torch, ts, task, job) -> dict:
    if task["kind"] == "memory":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        # Inputs count, as they do in JAX's peak_bytes_in_use.
        q, k, v, lens, do = _inputs(torch, task)
        _step_fn(torch, ts, task, q, k, v, lens, do)()
        torch.cuda.synchronize()
        return {
            "status": "ok",
            "impl_ran": "triton_sigmoid",
            "peak_bytes": int(torch.cuda.max_memory_allocated() - base),
        }
    q, k, v, lens, do = _inputs(torch, task)
    step = _step_fn(torch, ts, task, q, k, v, lens, do)
    outputs = step()
    torch.cuda.synchronize()
    rec = {
        "impl_ran": "triton_sigmoid",
        **_check(torch, task, q, k, v, lens, do, outputs, job["tol"]),
    }
    del outputs
    rec["status"] = "ok" if rec["correct"] else "wrong"
    rec.update(_time(torch, step, job["reps"], job["warmup"], job["min_sample_s"]))
    return rec


def main(job_path: str) -> None:
    """Runs every task of the job file, printing one JSON line per task (see module docstring).

    Args:
      job_path: the job JSON written by eval.kernels.peers.
    """
    with open(job_path) as f:
        job = json.load(f)
    try:
        import torch
        import triton
        import triton_sigmoid as ts
    except Exception as e:  # Optional: report why it cannot run instead of failing the benchmark.
        print(json.dumps({"available": False, "reason": f"{type(e).__name__}: {e}"}), flush=True)
        return
    torch.backends.cuda.matmul.allow_tf32 = False  # The float32 reference must stay float32.
    print(
        json.dumps(
            {
                "available": True,
                "torch": torch.__version__,
                "triton": triton.__version__,
                "triton_sigmoid": getattr(ts, "__version__", None),
                "device": torch.cuda.get_device_name(),
            }
        ),
        flush=True,
    )
    for task in job["tasks"]:
        if time.time() > job["deadline"]:
            rec = {"status": "skipped", "skip_reason": "time budget"}
        else:
            try:
                rec = _run_task(torch, ts, task, job)
            except Exception as e:  # One failed configuration must not cost the others.
                rec = {"status": "error", "error": f"{type(e).__name__}: {e}"[:1000]}
            torch.cuda.empty_cache()
        rec = {"id": task["id"], **rec}
        print(json.dumps(rec), flush=True)  # Infinity/NaN are read back by json.loads.


if __name__ == "__main__":
    main(sys.argv[1])
