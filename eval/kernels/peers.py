"""Peer implementations: cuDNN softmax (in process) and TritonSigmoid (torch, in a subprocess
running `_triton_sigmoid_runner.py`, which imports neither sigjax nor JAX), and the subprocess
plumbing they and the peak-memory runs share."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import sigjax
from eval.kernels.specs import Shape

_RUNNER = pathlib.Path(__file__).with_name("_triton_sigmoid_runner.py")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def cudnn_softmax(q, k, v, *, strict: bool = True, **kwargs):
    """The cuDNN softmax peer: `sigjax.softmax_attention(implementation="cudnn")`.

    Args:
      q, k, v: [B, T|S, N, H] inputs.
      strict: True asks for cuDNN (raising where it refuses the case); False takes the automatic
        choice, which the benchmark compiles only after a refusal and records in "impl_ran".
      **kwargs: the other `softmax_attention` arguments.

    Returns:
      [B, T, N, H] output.
    """
    return sigjax.softmax_attention(q, k, v, implementation="cudnn" if strict else None, **kwargs)


def cudnn_ran(compiled_text: str) -> str:
    """What a compiled "cudnn" program runs, read from its HLO: "cudnn" or "xla softmax".

    cuDNN attention is a custom call whose target starts with "__cudnn$fmha" (jax's
    fused_attention_stablehlo); a bare "cudnn" would also match function names in op metadata.
    """
    return "cudnn" if "__cudnn$fmha" in compiled_text else "xla softmax"


def child_env(extra_path: str | None = None) -> dict:
    """This environment with the repository root (and extra_path) first on PYTHONPATH."""
    paths = [str(REPO_ROOT)] + ([extra_path] if extra_path else [])
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + ([old] if old else []))}


def stream(cmd, env, deadline: float, on_line=None, grace_s: float = 30.0):
    """Runs cmd, collects its JSON-object stdout lines as dicts (calling on_line on each as it
    arrives; other lines are ignored), and kills it past deadline + grace_s.

    Returns:
      (records, stderr tail).
    """
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        timer = threading.Timer(max(deadline - time.time(), 0) + grace_s, proc.kill)
        timer.start()
        lines = []
        try:
            for line in proc.stdout:
                try:
                    rec = json.loads(line)
                except ValueError:  # Library chatter on stdout, not a record.
                    continue
                if isinstance(rec, dict):
                    lines.append(rec)
                    if on_line is not None:
                        on_line(rec)
            proc.wait()
        finally:
            timer.cancel()
        err.seek(0)
        tail = err.read()[-2000:]
        if proc.returncode:
            tail = f"exit code {proc.returncode}: {tail}"
    return lines, tail


def run_triton_sigmoid(
    shapes: list[Shape],
    mem_shapes: list[Shape],
    *,
    reps: int,
    warmup: int,
    tol: float,
    min_sample_s: float,
    deadline: float,
    extra_path: str | None = None,
    on_record=None,
) -> tuple[dict, list[dict]]:
    """Times TritonSigmoid on the same shapes in a subprocess (torch and JAX kept apart).

    Args:
      shapes: timing shapes.
      mem_shapes: peak-memory shapes (forward+backward).
      reps, warmup, tol, min_sample_s: as for `measure`.
      deadline: time.time() after which the runner skips what is left (and is killed 30 s later).
      extra_path: a folder prepended to the runner's PYTHONPATH (e.g. an unpacked wheel).
      on_record: called with each record as it arrives (to flush results as they come).

    Returns:
      (info, records): info has "available" and versions or the reason it is unavailable; one
      record per shape ("skipped" or "error" when the runner gave none).
    """
    tasks = [{"id": i, "kind": "time", **dataclasses.asdict(s)} for i, s in enumerate(shapes)] + [
        {"id": len(shapes) + i, "kind": "memory", **dataclasses.asdict(s)}
        for i, s in enumerate(mem_shapes)
    ]
    all_shapes = list(shapes) + list(mem_shapes)
    job = {
        "tasks": tasks,
        "reps": reps,
        "warmup": warmup,
        "tol": tol,
        "min_sample_s": min_sample_s,
        "deadline": deadline,
    }
    info, records = {"available": False, "reason": "runner gave no answer"}, {}

    def on_line(rec):
        nonlocal info
        if "available" in rec:
            info = rec
            return
        i = rec.pop("id", None)
        if not isinstance(i, int) or not 0 <= i < len(tasks):
            return
        rec = {"kind": tasks[i]["kind"], "impl": "triton_sigmoid", **all_shapes[i].params(), **rec}
        if rec["kind"] == "time" and "time_s" in rec:
            rec["flops"] = all_shapes[i].flops
            rec["tflops"] = rec["flops"] / rec["time_s"] / 1e12
        records[i] = rec
        if on_record is not None:
            on_record(rec)

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    try:
        _, err = stream(
            [sys.executable, str(_RUNNER), f.name], child_env(extra_path), deadline, on_line
        )
    finally:
        os.unlink(f.name)
    if not info.get("available") and info.get("reason") == "runner gave no answer":
        info["reason"] = f"runner gave no answer: {err[-500:]}"
    out = []
    for i, s in enumerate(all_shapes):
        if i in records:
            out.append(records[i])
            continue
        rec = {"kind": tasks[i]["kind"], "impl": "triton_sigmoid", **s.params()}
        if not info.get("available"):
            rec.update(status="unavailable", skip_reason=info.get("reason"))
        elif time.time() > deadline:
            rec.update(status="skipped", skip_reason="time budget")
        else:
            rec.update(status="error", error=f"no result from the runner: {err[-300:]}")
        out.append(rec)
        if on_record is not None:
            on_record(rec)
    return info, out
