"""Kernel benchmark: sigjax's Pallas kernel vs its XLA path, cuDNN softmax and TritonSigmoid.

One run on one device times every implementation on the same shapes and dtype, after checking
each against a float32 XLA reference, and writes under --out:
  kernels.json  every measurement with all its parameters (flushed after each one),
  kernels.md    TFLOPS tables with ratio columns, problems, peak memory,
  kernels.png   TFLOPS vs T, one line per implementation, one panel per (H, mode).

  python -m sigjax.evaluation.kernel_bench --out=DIR [--head_dims=64,128]
      [--seq_lens=1024,2048,4096,8192,16384] [--padding=0,0.25,0.5] [--causal=0,1]
      [--modes=fwd,fwdbwd] [--impls=pallas,xla,cudnn,triton_sigmoid] [--reps=30]
      [--memory_seq_lens=4096,8192,16384] [--budget_s=600] [--triton_sigmoid_path=DIR]
  python -m sigjax.evaluation.kernel_bench --quick --out=DIR      # tiny shapes, CPU interpret
  python -m sigjax.evaluation.kernel_bench tune --out=DIR --head_dims=128 --seq_lens=8192
  (the same through `python -m eval kernels ...`).

Shapes follow TritonSigmoid's benchmark: 16,384 tokens per batch and hidden 2048, so N = 2048 / H
and B = 16384 / T. Padding p draws per-sequence lengths (seeded) whose mean valid fraction is
1 - p. TFLOPS count valid tokens only: 4 N H sum_b len_b^2 for the forward (half that when
causal), x3.5 for forward+backward. Each time is the median of --reps samples after warm-up on
random normal inputs; a sample is several back-to-back calls when one call is shorter than
--min_sample_s, so dispatch overhead does not count. Implementations:
  pallas          sigjax.sigmoid_attention(implementation="pallas") (interpret mode off GPU)
  pallas_exact    the same with exact_sigmoid=True (exp and divide instead of tanh.approx)
  xla             sigjax.sigmoid_attention(implementation="xla"), the reference at input dtype
  cudnn           sigjax.softmax_attention(implementation="cudnn"); where cuDNN refuses, the
                  default implementation, recorded in "impl_ran"
  triton_sigmoid  PyPI triton-sigmoid (torch), timed in a subprocess by _triton_sigmoid_runner.py
Peak memory of forward+backward (B = 1, dense, non-causal) is measured first, in one fresh
subprocess per implementation over ascending T (or one per T with --memory_fresh), then
TritonSigmoid runs, then the JAX timings: subprocesses go first because this process's JAX
allocator never gives device memory back. If `sigjax.evaluation`'s other modules cannot be
imported on a machine, run this file by path: PYTHONPATH=. python sigjax/evaluation/kernel_bench.py
"""

import argparse
import dataclasses
import datetime
import functools
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

import sigjax

TOKENS_PER_BATCH = 16384
HIDDEN = 2048
BENCH_IMPLS = ("pallas", "xla", "cudnn", "triton_sigmoid")
KNOWN_IMPLS = (*BENCH_IMPLS, "pallas_exact")
MODES = ("fwd", "fwdbwd")
FWDBWD_FACTOR = 3.5
_RUNNER = pathlib.Path(__file__).with_name("_triton_sigmoid_runner.py")
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# Quick mode: tiny shapes that Pallas interpret mode runs in seconds on a CPU.
_QUICK = dict(tokens=128, hidden=64, head_dims=[32], seq_lens=[32, 64], reps=3, warmup=1)
_QUICK_MEMORY_SEQ_LENS = [32, 64]


@dataclasses.dataclass(frozen=True)
class Shape:
    """One benchmark configuration: [B, T, N, H] inputs with per-sequence valid lengths.

    Attributes:
      head_dim: H.
      heads: N.
      seq_len: T (= S, self-attention).
      batch: B.
      padding: requested mean padded fraction of the T slots (0 = dense).
      causal: mask keys after the query.
      mode: "fwd" or "fwdbwd" (forward, then the gradients of q, k and v).
      dtype: input dtype name, e.g. "bfloat16".
      lengths: B valid lengths (queries and keys alike).
    """

    head_dim: int
    heads: int
    seq_len: int
    batch: int
    padding: float
    causal: bool
    mode: str
    dtype: str
    lengths: tuple[int, ...]

    @property
    def padded(self) -> bool:
        """Whether any sequence is shorter than T (lengths are then passed to the kernels)."""
        return min(self.lengths) < self.seq_len

    @property
    def flops(self) -> float:
        """Useful floating-point operations, counted on valid tokens only."""
        return attention_flops(self.heads, self.head_dim, self.lengths, self.causal, self.mode)

    def params(self) -> dict:
        """JSON-serialisable parameters, with the valid token count and the actual padding."""
        d = dataclasses.asdict(self)
        d["lengths"] = list(self.lengths)
        d["valid_tokens"] = int(sum(self.lengths))
        d["valid_fraction"] = d["valid_tokens"] / (self.batch * self.seq_len)
        return d


def sequence_lengths(batch: int, seq_len: int, padding: float, seed: int = 0) -> np.ndarray:
    """Per-sequence valid lengths, seeded, whose mean valid fraction is 1 - padding.

    Lengths are drawn uniformly around the mean, then nudged one token at a time until their sum
    is round(batch * seq_len * (1 - padding)), so the valid fraction matches to one token.

    Args:
      batch: number of sequences B (>= 1).
      seq_len: padded length T (>= 1).
      padding: mean padded fraction in [0, 1); 0 gives every sequence length T.
      seed: numpy seed of the draw.

    Returns:
      int32 [B] lengths in [1, T].

    Raises:
      ValueError: if batch or seq_len is below 1, padding is outside [0, 1), or the padding is too
        large for every sequence to keep one token.
    """
    if batch < 1:
        raise ValueError(f"batch: got {batch}, expected >= 1")
    if seq_len < 1:
        raise ValueError(f"seq_len: got {seq_len}, expected >= 1")
    if not 0 <= padding < 1:
        raise ValueError(f"padding: got {padding}, expected a fraction in [0, 1)")
    if padding == 0:
        return np.full(batch, seq_len, np.int32)
    total = int(round(batch * seq_len * (1 - padding)))
    if total < batch:
        raise ValueError(
            f"padding: got {padding}, expected at most {1 - 1 / seq_len} so that each of the "
            f"{batch} sequences of length {seq_len} keeps one valid token"
        )
    keep = 1 - padding
    spread = min(keep, 1 - keep) * 0.8  # Stays inside [0, 1] around the mean fraction.
    rng = np.random.default_rng(seed)
    lens = np.clip(np.rint(rng.uniform(keep - spread, keep + spread, batch) * seq_len), 1, seq_len)
    lens = lens.astype(np.int64)
    i = 0
    while lens.sum() != total:  # Each step moves the sum one token towards the target.
        step = 1 if lens.sum() < total else -1
        if 1 <= lens[i % batch] + step <= seq_len:
            lens[i % batch] += step
        i += 1
    return lens.astype(np.int32)


def attention_flops(heads: int, head_dim: int, lengths, causal: bool, mode: str) -> float:
    """4 N H sum_b len_b^2 (two matmuls of 2 flops per multiply-add), halved when causal,
    x3.5 for forward+backward.

    Args:
      heads: N.
      head_dim: H.
      lengths: [B] valid lengths.
      causal: halve the count (the lower triangle only).
      mode: "fwd" or "fwdbwd".

    Returns:
      The flop count as a float.

    Raises:
      ValueError: on an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode: got {mode!r}, expected one of {MODES}")
    f = 4.0 * heads * head_dim * float(np.sum(np.asarray(lengths, np.float64) ** 2))
    if causal:
        f /= 2
    return f * FWDBWD_FACTOR if mode == "fwdbwd" else f


def benchmark_shapes(
    head_dims,
    seq_lens,
    paddings,
    causals,
    modes,
    *,
    tokens: int = TOKENS_PER_BATCH,
    hidden: int = HIDDEN,
    dtype: str = "bfloat16",
    seed: int = 0,
) -> list[Shape]:
    """Every combination of the given values, with N = hidden / H and B = max(tokens // T, 1).

    Args:
      head_dims, seq_lens, paddings, causals, modes: the values to combine.
      tokens: tokens per batch (B T).
      hidden: model width (N H).
      dtype: input dtype name.
      seed: seed of the length draw (the same for every shape, so runs are comparable).

    Returns:
      The shapes, H-major, then T, padding, causal, mode.

    Raises:
      ValueError: if a head dim does not divide hidden, or on an unknown mode.
    """
    shapes = []
    for h in head_dims:
        if h < 1 or hidden % h:
            raise ValueError(f"head_dims: got {h}, expected a divisor of hidden={hidden}")
        for t in seq_lens:
            b = max(tokens // t, 1)
            for pad in paddings:
                lens = tuple(int(x) for x in sequence_lengths(b, t, pad, seed))
                for causal in causals:
                    for mode in modes:
                        if mode not in MODES:
                            raise ValueError(f"modes: got {mode!r}, expected some of {MODES}")
                        shapes.append(
                            Shape(h, hidden // h, t, b, float(pad), bool(causal), mode, dtype, lens)
                        )
    return shapes


def make_inputs(shape: Shape, seed: int = 1):
    """Random normal q, k, v and output cotangent do (never zeros), and int32 lengths.

    Args:
      shape: the configuration.
      seed: jax.random seed.

    Returns:
      (q, k, v, lengths, do): [B, T, N, H] arrays in shape.dtype, lengths int32 [B].
    """
    dims = (shape.batch, shape.seq_len, shape.heads, shape.head_dim)
    keys = jax.random.split(jax.random.key(seed), 4)
    q, k, v, do = (jax.random.normal(kk, dims, jnp.float32).astype(shape.dtype) for kk in keys)
    return q, k, v, jnp.asarray(shape.lengths, jnp.int32), do


def _attention(impl: str, causal: bool, padded: bool, block_sizes=None, cudnn=True):
    """fn(q, k, v, lengths) -> out for one implementation (lengths only passed when padded)."""

    def fn(q, k, v, lens):
        kw = dict(is_causal=causal)
        if padded:
            kw.update(query_seq_lengths=lens, key_value_seq_lengths=lens)
        if impl == "cudnn":
            return sigjax.softmax_attention(
                q, k, v, implementation="cudnn" if cudnn else None, **kw
            )
        if impl == "softmax_ref":
            return sigjax.softmax_attention(q, k, v, implementation="xla", **kw)
        if impl in ("xla", "sigmoid_ref"):
            return sigjax.sigmoid_attention(q, k, v, implementation="xla", **kw)
        if impl in ("pallas", "pallas_exact"):
            return sigjax.sigmoid_attention(
                q,
                k,
                v,
                implementation="pallas",
                exact_sigmoid=impl == "pallas_exact",
                block_sizes=block_sizes,
                **kw,
            )
        raise ValueError(f"impls: got {impl!r}, expected some of {KNOWN_IMPLS}")

    return fn


def _program(impl: str, shape: Shape, block_sizes=None, cudnn=True):
    """The function timed for `shape.mode`: forward, or forward then the q, k, v gradients."""
    attn = _attention(impl, shape.causal, shape.padded, block_sizes, cudnn)
    if shape.mode == "fwd":
        return lambda q, k, v, lens, do: attn(q, k, v, lens)

    def fwdbwd(q, k, v, lens, do):
        out, vjp = jax.vjp(lambda q, k, v: attn(q, k, v, lens), q, k, v)
        return (out, *vjp(do.astype(out.dtype)))

    return fwdbwd


_REFERENCE_CACHE = {}


@functools.cache
def _jitted_reference(ref_impl: str, causal: bool, padded: bool, mode: str):
    # Keyed by what the program depends on, so jax.jit's compilation cache is reused.
    shape = Shape(16, 1, 1, 1, 0.0, causal, mode, "float32", (0,) if padded else (1,))
    return jax.jit(_program(ref_impl, shape))


def compile_program(impl: str, shape: Shape, args, block_sizes=None):
    """Lowers and compiles the benchmarked function for concrete inputs.

    For "cudnn", a refusal (cuDNN missing or the case unsupported) falls back to the default
    implementation of `sigjax.softmax_attention`; which one ran is read from the compiled HLO.

    Args:
      impl: an implementation name other than "triton_sigmoid".
      shape: the configuration.
      args: (q, k, v, lengths, do) from `make_inputs`.
      block_sizes: optional `BlockSizes` for the Pallas kernels.

    Returns:
      (compiled, impl_ran, compile_s): the executable, a description of what runs, and the
      seconds spent lowering and compiling.

    Raises:
      Exception: whatever lowering or compiling raises (other than a cuDNN refusal).
    """
    t0 = time.perf_counter()
    note = ""
    try:
        compiled = jax.jit(_program(impl, shape, block_sizes)).lower(*args).compile()
    except Exception as e:
        if impl != "cudnn":
            raise
        note = f" (cudnn refused: {type(e).__name__}: {str(e)[:200]})"
        compiled = jax.jit(_program(impl, shape, cudnn=False)).lower(*args).compile()
    seconds = time.perf_counter() - t0
    backend = jax.default_backend()
    if impl == "cudnn":
        ran = ("cudnn" if "cudnn" in compiled.as_text().lower() else "xla softmax") + note
    elif impl.startswith("pallas"):
        ran = impl if backend == "gpu" else f"{impl} (interpret mode on {backend})"
    else:
        ran = impl
    return compiled, ran, seconds


def _leaves(outputs) -> list:
    return list(outputs) if isinstance(outputs, tuple) else [outputs]


def check_outputs(
    impl: str, shape: Shape, args, outputs, *, tol: float, batch: int = 2, heads: int = 4
) -> dict:
    """Compares an implementation's results with the float32 XLA reference of the same op.

    Attention is independent per sequence and head, so the reference runs on the first `batch`
    sequences and `heads` heads only (its [B, N, T, S] scores would not fit at full size) and the
    benchmarked outputs are compared on that slice. Sigmoid implementations are compared with
    float32 `sigmoid_attention(implementation="xla")`, "cudnn" with float32 softmax XLA.

    Args:
      impl: implementation name.
      shape: the configuration.
      args: (q, k, v, lengths, do) the outputs were computed from.
      outputs: the output (fwd) or (output, dq, dk, dv) (fwdbwd).
      tol: largest accepted relative error, max |got - ref| / max |ref|, of any output.
      batch: sequences in the compared slice.
      heads: heads in the compared slice.

    Returns:
      dict with "max_abs_err" and "max_rel_err" (per output name), "worst_rel_err", "tol",
      "check_slice" [batch, heads] and "correct" (False also when anything is not finite).
    """
    nb, nh = min(batch, shape.batch), min(heads, shape.heads)
    q, k, v, lens, do = (x[:nb, :, :nh] if x.ndim == 4 else x[:nb] for x in args)
    ref_shape = dataclasses.replace(shape, batch=nb, heads=nh, lengths=shape.lengths[:nb])
    ref_impl = "softmax_ref" if impl == "cudnn" else "sigmoid_ref"
    cache_key = (ref_impl, ref_shape)  # Inputs are seeded: same shape, same reference.
    if cache_key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE.clear()  # One entry: the reference of the shape being measured.
        f32 = [x.astype(jnp.float32) for x in (q, k, v, do)]
        fn = _jitted_reference(ref_impl, shape.causal, shape.padded, shape.mode)
        _REFERENCE_CACHE[cache_key] = fn(f32[0], f32[1], f32[2], lens, f32[3])
    ref = _REFERENCE_CACHE[cache_key]
    names = ["out", "dq", "dk", "dv"]
    abs_err, rel_err = {}, {}
    for name, got, want in zip(names, _leaves(outputs), _leaves(ref), strict=False):
        got = np.asarray(got[:nb, :, :nh], np.float32)
        want = np.asarray(want, np.float32)
        diff = float(np.max(np.abs(got - want))) if np.all(np.isfinite(got)) else math.inf
        abs_err[name] = diff
        rel_err[name] = diff / max(float(np.max(np.abs(want))), 1e-30)
    worst = max(rel_err.values())
    return {
        "max_abs_err": abs_err,
        "max_rel_err": rel_err,
        "worst_rel_err": worst,
        "tol": tol,
        "check_slice": [nb, nh],
        "correct": bool(worst <= tol),
    }


def time_callable(fn, args, *, reps: int, warmup: int, min_sample_s: float) -> dict:
    """Median time of one call, blocking on the results.

    Args:
      fn: the (compiled) function.
      args: its arguments.
      reps: timed samples.
      warmup: untimed calls first.
      min_sample_s: a sample runs `inner` back-to-back calls, enough to last this long, and is
        divided by `inner`, so per-call dispatch overhead is hidden as it is in a training step.

    Returns:
      dict with "time_s" (median), "time_min_s", "time_max_s", "reps" and "inner".
    """
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    single = time.perf_counter() - t0
    inner = int(min(100, max(1, math.ceil(min_sample_s / max(single, 1e-9)))))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn(*args)
        jax.block_until_ready(out)
        samples.append((time.perf_counter() - t0) / inner)
    return {
        "time_s": float(np.median(samples)),
        "time_min_s": float(np.min(samples)),
        "time_max_s": float(np.max(samples)),
        "reps": reps,
        "inner": inner,
    }


def measure(
    impl: str,
    shape: Shape,
    *,
    reps: int,
    warmup: int = 2,
    tol: float = 3e-2,
    min_sample_s: float = 2e-3,
    block_sizes=None,
    time_wrong: bool = True,
) -> dict:
    """Compiles, checks against the float32 reference, then times one implementation on a shape.

    Args:
      impl: implementation name (not "triton_sigmoid").
      shape: the configuration.
      reps, warmup, min_sample_s: see `time_callable`.
      tol: see `check_outputs`.
      block_sizes: optional `BlockSizes` for the Pallas kernels.
      time_wrong: also time an implementation whose check failed (status "wrong").

    Returns:
      A record: the shape's parameters, "impl", "impl_ran", "compile_s", the check's fields,
      the timing fields, "flops", "tflops" and "status" ("ok" or "wrong").

    Raises:
      Exception: whatever compiling or running raises; the caller records it.
    """
    args = make_inputs(shape)
    rec = {"kind": "time", "impl": impl}
    rec.update(shape.params())
    compiled, rec["impl_ran"], rec["compile_s"] = compile_program(impl, shape, args, block_sizes)
    outputs = jax.block_until_ready(compiled(*args))
    rec.update(check_outputs(impl, shape, args, outputs, tol=tol))
    del outputs
    rec["status"] = "ok" if rec["correct"] else "wrong"
    if rec["correct"] or time_wrong:
        rec.update(
            time_callable(compiled, args, reps=reps, warmup=warmup, min_sample_s=min_sample_s)
        )
        rec["flops"] = shape.flops
        rec["tflops"] = shape.flops / rec["time_s"] / 1e12
    return rec


def memory_shapes(head_dims, seq_lens, *, hidden: int, dtype: str) -> list[Shape]:
    """Dense, non-causal forward+backward shapes with B = 1, one per (H, T), T ascending."""
    return [
        Shape(h, hidden // h, t, 1, 0.0, False, "fwdbwd", dtype, (t,))
        for h in head_dims
        for t in sorted(seq_lens)
    ]


def measure_memory(impl: str, shape: Shape) -> dict:
    """Compiled memory estimate and the device's peak bytes in use after one forward+backward.

    `peak_bytes_in_use` is the allocator's peak since the process started (JAX cannot reset it):
    callers run this in a fresh process, over ascending T, so each peak is that T's own.

    Args:
      impl: implementation name (not "triton_sigmoid").
      shape: the configuration (mode "fwdbwd").

    Returns:
      A record with "compiled_bytes" (arguments + outputs + temporaries of the executable),
      "temp_bytes" and "peak_bytes" (None where the device reports no memory stats).
    """
    args = make_inputs(shape)
    compiled, ran, _ = compile_program(impl, shape, args)
    jax.block_until_ready(compiled(*args))
    stats = jax.devices()[0].memory_stats() or {}
    ma = compiled.memory_analysis()
    rec = {"kind": "memory", "impl": impl, "impl_ran": ran, **shape.params(), "status": "ok"}
    rec["temp_bytes"] = int(ma.temp_size_in_bytes) if ma is not None else None
    rec["compiled_bytes"] = (
        int(ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes)
        if ma is not None
        else None
    )
    rec["peak_bytes"] = stats.get("peak_bytes_in_use")
    return rec


def _memory_subprocess(impl: str, shapes: list[Shape], deadline: float) -> list[dict]:
    """Runs `measure_memory` for each shape in one fresh process; one record per shape."""
    todo = json.dumps([dataclasses.asdict(s) for s in shapes])
    env = {**_child_env(), "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    # By file path: the child needs neither the sigjax.evaluation package nor its dependencies.
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "_memory", impl, todo]
    lines, err = _stream([*cmd, str(deadline)], env, deadline)
    by_seq = {(r.get("head_dim"), r.get("seq_len")): r for r in lines}
    out, failed = [], False
    for s in shapes:
        rec = by_seq.get((s.head_dim, s.seq_len))
        if rec is None:
            rec = {"kind": "memory", "impl": impl, **s.params(), "status": "error"}
            if failed:
                rec.update(status="skipped", skip_reason="not run after a failure at a smaller T")
            elif time.time() > deadline:
                rec.update(status="skipped", skip_reason="memory time budget")
            else:
                rec["error"] = f"no result from the memory subprocess: {err[-300:]}"
        failed = failed or rec.get("status") == "error"
        out.append(rec)
    return out


def _memory_child(impl: str, todo_json: str, deadline: float) -> None:
    """Body of the `_memory` subprocess: prints one JSON record per shape until the deadline;
    stops at the first failure (a larger T would fail the same way or run out of memory)."""
    for d in json.loads(todo_json):
        if time.time() > deadline:
            return
        d["lengths"] = tuple(d["lengths"])
        shape = Shape(**d)
        try:
            rec = measure_memory(impl, shape)
        except Exception as e:  # Reported in the record; the parent keeps going.
            rec = {"kind": "memory", "impl": impl, **shape.params(), "status": "error"}
            rec["error"] = f"{type(e).__name__}: {e}"[:500]
        print(json.dumps(rec), flush=True)
        if rec["status"] != "ok":
            return


def _child_env(extra_path: str | None = None) -> dict:
    paths = [str(_REPO_ROOT)] + ([extra_path] if extra_path else [])
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + ([old] if old else []))}


def _stream(cmd, env, deadline: float, on_line=None, grace_s: float = 30.0):
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
        _, err = _stream(
            [sys.executable, str(_RUNNER), f.name], _child_env(extra_path), deadline, on_line
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


class _Results:
    """Records plus run metadata, rewritten (atomically) to kernels.json after every change."""

    def __init__(self, path: pathlib.Path, meta: dict):
        self.path, self.meta, self.records = path, meta, []

    def add(self, rec: dict, echo: bool = True) -> None:
        self.records.append(rec)
        if echo:
            keys = ("impl", "mode", "head_dim", "seq_len", "padding", "causal", "status")
            brief = {k: rec.get(k) for k in keys}
            for k in ("tflops", "worst_rel_err", "peak_bytes", "error", "skip_reason"):
                if rec.get(k) is not None:
                    brief[k] = rec[k]
            print(json.dumps(_jsonable(brief))[:400], flush=True)
        self.flush()

    def flush(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_jsonable({**self.meta, "results": self.records}), indent=1))
        os.replace(tmp, self.path)


def _jsonable(x):
    """Non-finite floats become strings ("inf", "nan"): strict JSON readers reject them."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _git_commit() -> str | None:
    try:
        r = subprocess.run(
            ["git", "-C", str(_REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(_REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode:
        return None
    return r.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _meta(argv) -> dict:
    dev = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m sigjax.evaluation.kernel_bench " + " ".join(argv),
        "commit": _git_commit(),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
    }


def _version(pkg: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _xla_too_large(shape: Shape, limit: float) -> bool:
    # The XLA path materialises float32 [B, N, T, S] scores; forward+backward keeps several.
    elems = shape.batch * shape.heads * shape.seq_len**2 * (3 if shape.mode == "fwdbwd" else 1)
    return elems > limit


def benchmark(args, argv=()) -> list[dict]:
    """The benchmark run (see the module docstring); returns every record it wrote.

    Args:
      args: parsed flags (`parse_args`).
      argv: the command-line arguments, recorded in the metadata.

    Returns:
      The records of kernels.json.
    """
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    deadline = start + args.budget_s
    jax_impls = [i for i in args.impls if i != "triton_sigmoid"]
    want_triton = "triton_sigmoid" in args.impls
    shapes = benchmark_shapes(
        args.head_dims,
        args.seq_lens,
        args.padding,
        args.causal,
        args.modes,
        tokens=args.tokens,
        hidden=args.hidden,
        dtype=args.dtype,
        seed=args.seed,
    )
    mem_shapes = memory_shapes(
        args.head_dims, args.memory_seq_lens, hidden=args.hidden, dtype=args.dtype
    )
    mem_impls = [i for i in args.memory_impls if i in jax_impls] if mem_shapes else []

    # Order: peak memory, then TritonSigmoid, each in fresh subprocesses while this process holds
    # (almost) no device memory (JAX's allocator never hands memory back), then the JAX timings.
    results = _Results(out / "kernels.json", {**_meta(argv), "args": vars(args)})
    mem_deadline = start + args.budget_s * args.memory_share
    for impl in mem_impls:
        if time.time() > mem_deadline:
            for s in mem_shapes:
                rec = {"kind": "memory", "impl": impl, **s.params()}
                results.add({**rec, "status": "skipped", "skip_reason": "memory time budget"})
            continue
        groups = [[s] for s in mem_shapes] if args.memory_fresh else [mem_shapes]
        for group in groups:
            for rec in _memory_subprocess(impl, group, mem_deadline):
                results.add(rec)

    if want_triton:
        info, _ = run_triton_sigmoid(
            shapes,
            mem_shapes if "triton_sigmoid" in args.memory_impls else [],
            reps=args.reps,
            warmup=args.warmup,
            tol=args.tol,
            min_sample_s=args.min_sample_s,
            deadline=min(time.time() + args.budget_s * args.triton_share, deadline),
            extra_path=args.triton_sigmoid_path,
            on_record=results.add,
        )
        results.meta["triton_sigmoid"] = info
        results.flush()

    for shape in shapes:
        for impl in jax_impls:
            rec = {"kind": "time", "impl": impl, **shape.params()}
            if time.time() > deadline:
                rec.update(status="skipped", skip_reason="time budget")
            elif impl == "xla" and _xla_too_large(shape, args.xla_max_elems):
                rec.update(
                    status="skipped",
                    skip_reason=f"xla scores B*N*T*S above --xla_max_elems={args.xla_max_elems:g}",
                )
            else:
                try:
                    rec = measure(
                        impl,
                        shape,
                        reps=args.reps,
                        warmup=args.warmup,
                        tol=args.tol,
                        min_sample_s=args.min_sample_s,
                    )
                except Exception as e:  # One failed configuration must not cost the run.
                    rec.update(status="error", error=f"{type(e).__name__}: {e}"[:1000])
            results.add(rec)

    md = markdown_report(results.meta, results.records)
    (out / "kernels.md").write_text(md)
    try:
        plot_tflops(results.records, out / "kernels.png")
    except Exception as e:  # A missing plot must not lose the tables.
        print(f"kernels.png not written: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"wrote {out / 'kernels.json'}, {out / 'kernels.md'}, {out / 'kernels.png'}\n")
    print(summary_table(results.records))
    return results.records


def _index(records):
    """{(H, T, padding, causal, mode): {impl: record}} of timing records."""
    table = {}
    for r in records:
        if r.get("kind") == "time":
            key = (r["head_dim"], r["seq_len"], r["padding"], r["causal"], r["mode"])
            table.setdefault(key, {})[r["impl"]] = r
    return table


def _tflops_cell(r) -> str:
    if r is None:
        return ""
    if r.get("tflops") is not None:
        mark = " WRONG" if r.get("status") == "wrong" else ""
        return f"{r['tflops']:.3g}{mark}" if r["tflops"] < 100 else f"{r['tflops']:.0f}{mark}"
    return {"error": "error", "skipped": "skip", "unavailable": "n/a"}.get(r.get("status"), "?")


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else ""


def _time(r):
    return r.get("time_s") if r and r.get("status") == "ok" else None


def _tf(r):
    return r.get("tflops") if r and r.get("status") == "ok" else None


def markdown_report(meta: dict, records: list[dict]) -> str:
    """kernels.md: metadata, one TFLOPS table per mode with ratio columns, problems, memory.

    Ratios use only measurements that passed the correctness check. Column meanings: pallas/cudnn
    and pallas/triton are TFLOPS ratios (> 1: pallas faster); "pad/dense time" is pallas time at
    this padding over pallas time unpadded (same T, causal); "causal/full time" is pallas causal
    time over non-causal time (same T, padding). A TFLOPS cell marked WRONG failed the check.

    Args:
      meta: run metadata (date, device, versions, command).
      records: kernels.json's records.

    Returns:
      The markdown text.
    """
    lines = ["# Attention kernel benchmark", ""]
    for k in ("date", "device", "backend", "jax", "jaxlib", "python", "commit", "command"):
        lines.append(f"- {k}: `{meta.get(k)}`")
    ts = meta.get("triton_sigmoid")
    if ts is not None:
        lines.append(f"- triton_sigmoid: `{json.dumps(ts)[:300]}`")
    table = _index(records)
    impls = [i for i in KNOWN_IMPLS if any(i in row for row in table.values())]
    for mode in MODES:
        keys = sorted(k for k in table if k[4] == mode)
        if not keys:
            continue
        lines += ["", f"## {mode} TFLOPS (valid tokens only)", ""]
        head = ["H", "T", "B", "pad", "causal", *impls]
        head += ["pallas/cudnn", "pallas/triton", "pad/dense time", "causal/full time"]
        head += ["pallas rel err", "cudnn ran"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key in keys:
            h, t, pad, causal, _ = key
            row = table[key]
            p = row.get("pallas")
            dense = table.get((h, t, 0.0, causal, mode), {}).get("pallas")
            full = table.get((h, t, pad, False, mode), {}).get("pallas")
            any_rec = next(iter(row.values()))
            err = p.get("worst_rel_err") if p else None
            cells = [str(h), str(t), str(any_rec["batch"]), f"{pad:.2f}", str(int(causal))]
            cells += [_tflops_cell(row.get(i)) for i in impls]
            cells += [
                _ratio(_tf(p), _tf(row.get("cudnn"))),
                _ratio(_tf(p), _tf(row.get("triton_sigmoid"))),
                _ratio(_time(p), _time(dense)) if pad else "",
                _ratio(_time(p), _time(full)) if causal else "",
                "" if err is None else f"{err:.1e}",
                (row.get("cudnn") or {}).get("impl_ran", "").split(" (")[0],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    mem = [r for r in records if r.get("kind") == "memory"]
    if mem:
        lines += ["", "## Peak device memory, forward+backward (B = 1, dense, non-causal)", ""]
        lines += ["Linear memory in T shows as a constant peak KiB per token.", ""]
        head = "| impl | H | N | T | peak MiB | peak KiB / token | compiled MiB | status |"
        lines += [head, "|" + "---|" * 8]
        for r in sorted(mem, key=lambda r: (r["impl"], r["head_dim"], r["seq_len"])):
            mib = lambda b: "" if b is None else f"{b / 2**20:.4g}"  # noqa: E731
            per_token = lambda b, t: "" if b is None else f"{b / 2**10 / t:.4g}"  # noqa: E731
            status = r.get("status", "")
            if status != "ok":
                status += f": {(r.get('error') or r.get('skip_reason') or '')[:80]}"
            lines.append(
                f"| {r['impl']} | {r['head_dim']} | {r['heads']} | {r['seq_len']} | "
                f"{mib(r.get('peak_bytes'))} | {per_token(r.get('peak_bytes'), r['seq_len'])} | "
                f"{mib(r.get('compiled_bytes'))} | {status} |"
            )
    bad = [r for r in records if r.get("status") not in ("ok", None)]
    fallbacks = sorted({r["impl_ran"] for r in records if "refused" in r.get("impl_ran", "")})
    if bad or fallbacks:
        lines += ["", "## Problems", ""]
        lines += [f"- cudnn fell back: {f[:300]}" for f in fallbacks]
        # Skipped and unavailable measurements share a reason: one line per reason.
        grouped = {}
        for r in bad:
            if r["status"] in ("skipped", "unavailable"):
                key = (r["status"], r["impl"], r.get("kind"), r.get("skip_reason"))
                grouped[key] = grouped.get(key, 0) + 1
                continue
            what = r.get("error") or ""
            if r["status"] == "wrong":
                what = f"worst relative error {r['worst_rel_err']:.3g} > tol {r['tol']:g}: "
                what += json.dumps(_jsonable(r["max_rel_err"]))
            lines.append(
                f"- {r.get('kind')} {r['impl']} H={r['head_dim']} T={r['seq_len']} "
                f"pad={r['padding']} causal={int(r['causal'])} {r['mode']}: "
                f"**{r['status']}** {what[:300]}"
            )
        for (status, impl, kind, why), n in grouped.items():
            lines.append(f"- {n} {kind} measurement(s) of {impl} **{status}**: {str(why)[:300]}")
    return "\n".join(lines) + "\n"


def summary_table(records: list[dict]) -> str:
    """A short plain-text table: dense, non-causal TFLOPS per implementation, and problems."""
    table = _index(records)
    impls = [i for i in KNOWN_IMPLS if any(i in row for row in table.values())]
    rows = [["mode", "H", "T", *impls, "pallas/cudnn", "pallas/triton"]]
    for key in sorted(table):
        h, t, pad, causal, mode = key
        if pad or causal:
            continue
        row = table[key]
        rows.append(
            [mode, str(h), str(t)]
            + [_tflops_cell(row.get(i)) for i in impls]
            + [
                _ratio(_tf(row.get("pallas")), _tf(row.get("cudnn"))),
                _ratio(_tf(row.get("pallas")), _tf(row.get("triton_sigmoid"))),
            ]
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    text = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    counts = {}
    for r in records:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    text.append(f"TFLOPS, dense non-causal. Records by status: {counts}")
    return "\n".join(text)


def plot_tflops(records: list[dict], path) -> None:
    """kernels.png: TFLOPS vs T (log axis) for dense, non-causal shapes; one line per
    implementation, one panel per (mode, H). Only measurements that passed the check are drawn.

    Args:
      records: kernels.json's records.
      path: the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [
        r
        for r in records
        if r.get("kind") == "time" and _tf(r) and not r["padding"] and not r["causal"]
    ]
    modes = [m for m in MODES if any(r["mode"] == m for r in ok)] or ["fwd"]
    dims = sorted({r["head_dim"] for r in ok}) or [0]
    fig, axes = plt.subplots(
        len(modes), len(dims), figsize=(5 * len(dims), 3.8 * len(modes)), squeeze=False
    )
    for i, mode in enumerate(modes):
        for j, h in enumerate(dims):
            ax = axes[i][j]
            for impl in KNOWN_IMPLS:
                pts = sorted(
                    (r["seq_len"], r["tflops"])
                    for r in ok
                    if r["impl"] == impl and r["head_dim"] == h and r["mode"] == mode
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=impl)
            ax.set(xlabel="T", ylabel="TFLOPS", title=f"{mode}, H={h}")
            ax.set_xscale("log", base=2)
            ts = sorted({r["seq_len"] for r in ok if r["head_dim"] == h and r["mode"] == mode})
            ax.set_xticks(ts, [str(t) for t in ts])
            ax.minorticks_off()
            if ax.lines:
                ax.legend(fontsize=8)
    fig.suptitle("dense, non-causal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Block-size grids of the tune mode. A fwdbwd sweep tunes the dQ tiles first (dK/dV at their
# defaults), then the dK/dV tiles with the best dQ tiles; warps and stages are shared.
_TUNE_GRIDS = {
    "fwd": dict(block_q=(64, 128), block_k=(32, 64, 128), num_warps=(4, 8), num_stages=(2, 3)),
    "dq": dict(
        block_q_dq=(32, 64, 128), block_k_dq=(32, 64), num_warps_bwd=(4, 8), num_stages_bwd=(1, 2)
    ),
    "dkv": dict(block_q_dkv=(32, 64), block_k_dkv=(32, 64, 128)),
}
_QUICK_TUNE_GRIDS = {
    "fwd": dict(block_q=(16, 32), block_k=(16,)),
    "dq": dict(block_q_dq=(16, 32)),
    "dkv": dict(block_k_dkv=(16, 32)),
}


def _grid(spec: dict) -> list[dict]:
    combos = [{}]
    for name, values in spec.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return combos


def _t_bucket(t: int) -> int:
    return 1 << max(0, (t - 1).bit_length())


def tune(args, argv=()) -> dict:
    """Sweeps Pallas `BlockSizes` per shape, checks and times each, reports the best.

    For each (H, T, padding, causal, mode) shape: the table's default first, then every grid
    point; a candidate whose check fails is recorded and never chosen. Writes tune.json
    (metadata, every candidate, the best per (H, dtype, T bucket, causal, mode), and merged
    `BlockSizes` per (H, dtype, T bucket) ready to paste into the block-size table) and prints
    the best ones.

    Args:
      args: parsed flags (`parse_args`, tune mode).
      argv: the command-line arguments, recorded in the metadata.

    Returns:
      tune.json's content.
    """
    from pallas_kernels.sigmoid_attention import default_block_sizes

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.budget_s
    grids = _QUICK_TUNE_GRIDS if args.quick else _TUNE_GRIDS
    results = _Results(out / "tune.json", {**_meta(argv), "args": vars(args)})
    best_fwd = {}  # (H, T, padding, causal) -> BlockSizes chosen by the fwd sweep.
    best = {}

    def try_candidate(shape, bs, stage):
        fields = dataclasses.asdict(bs)
        rec = {"kind": "tune", "impl": "pallas", "stage": stage, **shape.params(), **fields}
        if time.time() > deadline:
            rec.update(status="skipped", skip_reason="time budget")
        else:
            try:
                rec.update(
                    measure(
                        "pallas",
                        shape,
                        reps=args.reps,
                        warmup=args.warmup,
                        tol=args.tol,
                        min_sample_s=args.min_sample_s,
                        block_sizes=bs,
                        time_wrong=False,
                    ),
                    stage=stage,
                    kind="tune",
                )
            except Exception as e:  # A candidate that fails to compile or run is just not chosen.
                rec.update(status="error", error=f"{type(e).__name__}: {e}"[:500])
        results.add(rec)
        return rec

    def sweep(shape, base, stage, grid, base_rec=None):
        recs = [base_rec or try_candidate(shape, base, f"{stage}:start")]
        for over in _grid(grid):
            try:
                bs = dataclasses.replace(base, **over)
            except ValueError as e:
                rec = {"kind": "tune", "impl": "pallas", "stage": stage, **shape.params(), **over}
                rec.update(status="error", error=str(e))
                results.add(rec)
                continue
            if bs != base:
                recs.append(try_candidate(shape, bs, stage))
        good = [r for r in recs if r.get("status") == "ok"]
        if not good:
            return base, None, recs[0]
        top = max(good, key=lambda r: r["tflops"])
        fields = {f.name: top[f.name] for f in dataclasses.fields(base)}
        return dataclasses.replace(base, **fields), top, recs[0]

    shapes = benchmark_shapes(
        args.head_dims,
        args.seq_lens,
        args.padding,
        args.causal,
        sorted(args.modes, key=MODES.index),  # fwd before fwdbwd: fwdbwd reuses its choice.
        tokens=args.tokens,
        hidden=args.hidden,
        dtype=args.dtype,
        seed=args.seed,
    )
    for shape in shapes:
        base = default_block_sizes(_t_bucket(shape.head_dim), shape.dtype)
        fwd_key = (shape.head_dim, shape.seq_len, shape.padding, shape.causal)
        if shape.mode == "fwd":
            chosen, top, default = sweep(shape, base, "fwd", grids["fwd"])
            best_fwd[fwd_key] = chosen
        else:
            # Backward sweeps start from the forward tiles chosen above (when tuned this run);
            # the table's default is timed too, as the baseline of the speed-up.
            start = best_fwd.get(fwd_key, base)
            default = try_candidate(shape, base, "table default") if start != base else None
            after_dq, top_dq, start_rec = sweep(shape, start, "dq", grids["dq"])
            default = default or start_rec
            chosen, top, _ = sweep(shape, after_dq, "dkv", grids["dkv"], top_dq)
        if top is None:
            continue
        key = (shape.head_dim, shape.dtype, _t_bucket(shape.seq_len), shape.causal, shape.mode)
        best[key] = {
            "head_dim": shape.head_dim,
            "dtype": shape.dtype,
            "t_bucket": key[2],
            "seq_len": shape.seq_len,
            "padding": shape.padding,
            "causal": shape.causal,
            "mode": shape.mode,
            "block_sizes": dataclasses.asdict(chosen),
            "tflops": top["tflops"],
            "default_tflops": _tf(default),
            "speedup_vs_default": _ratio(top["tflops"], _tf(default)) or None,
        }
    merged = _merge_best(best, default_block_sizes)
    results.meta["best"] = list(best.values())
    results.meta["table"] = merged
    results.flush()
    print("\nBest block sizes per (H, dtype, T bucket, causal, mode):")
    for b in best.values():
        print(
            f"  H={b['head_dim']} {b['dtype']} T<={b['t_bucket']} causal={int(b['causal'])} "
            f"{b['mode']}: {b['tflops']:.4g} TFLOPS (table default {b['default_tflops'] or 0:.4g})"
            f" {_block_sizes_repr(b['block_sizes'])}"
        )
    print("\nFor the block-size table (forward fields from fwd, backward from fwdbwd):")
    for m in merged:
        print(f"  {m['entry']}")
    print(f"\nwrote {out / 'tune.json'}")
    return {**results.meta, "results": results.records}


def _block_sizes_repr(fields: dict) -> str:
    """`BlockSizes(...)` source naming the fields that differ from the dataclass defaults."""
    from pallas_kernels.sigmoid_attention import BlockSizes

    plain = dataclasses.asdict(BlockSizes())
    shown = {k: v for k, v in fields.items() if plain.get(k) != v}
    return "BlockSizes(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")"


def _merge_best(best: dict, default_block_sizes) -> list[dict]:
    """One BlockSizes per (H, dtype, T bucket): forward fields from the best non-causal fwd
    shape (else causal), backward fields from the best fwdbwd shape, the rest the defaults."""
    from pallas_kernels.sigmoid_attention import BlockSizes

    bwd_fields = {
        "block_q_dq",
        "block_k_dq",
        "block_q_dkv",
        "block_k_dkv",
        "num_warps_bwd",
        "num_stages_bwd",
    }
    merged, notes = {}, {}
    for (h, dtype, tb, causal, mode), b in sorted(best.items(), key=lambda kv: kv[0][3]):
        entry = merged.setdefault((h, dtype, tb), {})
        take = bwd_fields if mode == "fwdbwd" else set(b["block_sizes"]) - bwd_fields
        if (mode, "taken") not in entry:  # Non-causal sorts first: it wins.
            entry[(mode, "taken")] = True
            entry.update({(mode, k): b["block_sizes"][k] for k in take})
            note = f"{mode} {b['tflops']:.4g} TFLOPS at T={b['seq_len']}"
            note += f" causal={int(causal)} (table default {b['default_tflops'] or 0:.4g})"
            notes.setdefault((h, dtype, tb), []).append(note)
    out = []
    for (h, dtype, tb), entry in merged.items():
        fields = dataclasses.asdict(default_block_sizes(_t_bucket(h), dtype))
        fields.update({k: v for (_, k), v in entry.items() if k != "taken"})
        BlockSizes(**fields)  # Validates.
        entry_text = f'({h}, "{dtype}"): {_block_sizes_repr(fields)},  # T <= {tb}: '
        entry_text += "; ".join(notes[(h, dtype, tb)])
        out.append(
            {
                "head_dim": h,
                "dtype": dtype,
                "t_bucket": tb,
                "block_sizes": fields,
                "entry": entry_text,
            }
        )
    return out


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def _bools(s: str) -> list[bool]:
    table = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}
    out = []
    for x in s.split(","):
        x = x.strip().lower()
        if x == "both":
            out += [False, True]
        elif x in table:
            out.append(table[x])
        elif x:
            raise argparse.ArgumentTypeError(f"got {x!r}, expected 0/1/false/true/both")
    return out


def _names(allowed):
    def parse(s: str) -> list[str]:
        names = [x.strip() for x in s.split(",") if x.strip()]
        for n in names:
            if n not in allowed:
                raise argparse.ArgumentTypeError(f"got {n!r}, expected some of {allowed}")
        return names

    return parse


def parse_args(argv) -> argparse.Namespace:
    """Parses the flags (`-h` lists them); a first argument "tune" selects the tune mode.

    Args:
      argv: command-line arguments without the program name.

    Returns:
      The namespace, with --quick defaults applied and `tune` set.

    Raises:
      SystemExit: on bad flags (argparse).
    """
    argv = list(argv)
    tune_mode = bool(argv) and argv[0] == "tune"
    if tune_mode:
        argv = argv[1:]
    p = argparse.ArgumentParser(
        prog="python -m sigjax.evaluation.kernel_bench [tune]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tune", action="store_true", help="sweep BlockSizes (same as `tune`)")
    p.add_argument("--quick", action="store_true", help="tiny shapes for a CPU (interpret mode)")
    p.add_argument("--head_dims", type=_ints, default=None, help="H values [64,128]")
    p.add_argument("--seq_lens", type=_ints, default=None, help="T values [1024..16384]")
    p.add_argument("--padding", type=_floats, default=[0.0, 0.25, 0.5], help="padded fractions")
    p.add_argument("--causal", type=_bools, default=[False, True], help="0,1 / both")
    p.add_argument("--modes", type=_names(MODES), default=list(MODES), help="fwd,fwdbwd")
    p.add_argument(
        "--impls", type=_names(KNOWN_IMPLS), default=list(BENCH_IMPLS), help=",".join(KNOWN_IMPLS)
    )
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--reps", type=int, default=None, help="timed samples per measurement [30]")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first [3]")
    p.add_argument("--min_sample_s", type=float, default=2e-3, help="shortest timed sample")
    p.add_argument("--tol", type=float, default=3e-2, help="max relative error vs float32")
    p.add_argument(
        "--tokens", type=int, default=None, help=f"tokens per batch [{TOKENS_PER_BATCH}]"
    )
    p.add_argument("--hidden", type=int, default=None, help=f"N*H [{HIDDEN}]")
    p.add_argument("--seed", type=int, default=0, help="seed of the length draw")
    p.add_argument(
        "--memory_seq_lens",
        type=_ints,
        default=None,
        help="T of peak-memory runs [4096,8192,16384]",
    )
    p.add_argument(
        "--memory_impls",
        type=_names(KNOWN_IMPLS),
        default=["pallas", "cudnn", "xla", "triton_sigmoid"],
        help="implementations of the peak-memory runs (those also in --impls)",
    )
    p.add_argument("--budget_s", type=float, default=540, help="skip what is left after this")
    p.add_argument(
        "--memory_fresh", action="store_true", help="one fresh process per peak-memory run"
    )
    p.add_argument("--memory_share", type=float, default=0.15, help="budget share of memory runs")
    p.add_argument("--triton_share", type=float, default=0.25, help="budget share of TritonSigmoid")
    p.add_argument(
        "--xla_max_elems", type=float, default=2.0**34, help="skip xla above B*N*T*S(*3 fwdbwd)"
    )
    p.add_argument(
        "--triton_sigmoid_path", default=None, help="folder prepended to the runner's PYTHONPATH"
    )
    args = p.parse_args(argv)
    args.tune = args.tune or tune_mode
    q = args.quick
    defaults = dict(
        head_dims=_QUICK["head_dims"] if q else [64, 128],
        seq_lens=_QUICK["seq_lens"] if q else [1024, 2048, 4096, 8192, 16384],
        reps=_QUICK["reps"] if q else 30,
        warmup=_QUICK["warmup"] if q else 3,
        tokens=_QUICK["tokens"] if q else TOKENS_PER_BATCH,
        hidden=_QUICK["hidden"] if q else HIDDEN,
        memory_seq_lens=_QUICK_MEMORY_SEQ_LENS if q else [4096, 8192, 16384],
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("reps", "tokens", "hidden"):
        if getattr(args, name) < 1:
            p.error(f"--{name}: got {getattr(args, name)}, expected >= 1")
    return args


def main(argv=None):
    """Entry point of `python -m sigjax.evaluation.kernel_bench` and `python -m eval kernels`.

    Args:
      argv: arguments without the program name; default sys.argv[1:].

    Returns:
      The benchmark's records, or tune.json's content in tune mode.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_memory":  # Internal: the fresh process of a peak-memory run.
        return _memory_child(argv[1], argv[2], float(argv[3]))
    # Set before this process first touches the device (the backend starts lazily): the memory
    # and TritonSigmoid subprocesses need the memory a preallocating JAX would take.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    args = parse_args(argv)
    return tune(args, argv) if args.tune else benchmark(args, argv)


if __name__ == "__main__":
    main()
