"""One measurement: compile an implementation, check it against float32 XLA, then time it; and
the peak-memory runs, each in a fresh subprocess."""

import dataclasses
import functools
import json
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import sigjax
from eval.kernels import peers
from eval.kernels.specs import KNOWN_IMPLS, MIN_SAMPLE_S, Shape, make_inputs
from eval.kernels.timing import time_callable
from sigjax.attention._pallas import table_config


def _attention(impl: str, causal: bool, padded: bool, kernel_config=None, cudnn=True):
    """fn(q, k, v, lengths) -> out for one implementation (lengths only passed when padded)."""

    def fn(q, k, v, lens):
        kw = dict(is_causal=causal)
        if padded:
            kw.update(query_seq_lengths=lens, key_value_seq_lengths=lens)
        if impl == "cudnn":
            return peers.cudnn_softmax(q, k, v, strict=cudnn, **kw)
        if impl == "softmax_ref":
            return sigjax.softmax_attention(q, k, v, implementation="xla", **kw)
        if impl in ("xla", "sigmoid_ref"):
            return sigjax.sigmoid_attention(q, k, v, implementation="xla", **kw)
        if impl in ("pallas", "pallas_exact", "pallas_hopper", "pallas_mosaic"):
            config = kernel_config
            if impl in ("pallas_hopper", "pallas_mosaic"):
                config = dataclasses.replace(
                    config
                    or table_config(
                        q.shape[-1],
                        q.dtype,
                        max(q.shape[1], k.shape[1]),
                        interpret=jax.default_backend() != "gpu",
                    ),
                    hopper_bwd=True,
                    hopper_fwd=impl == "pallas_mosaic",
                )
            return sigjax.sigmoid_attention(
                q,
                k,
                v,
                implementation="pallas",
                exact_sigmoid=impl == "pallas_exact",
                kernel_config=config,
                **kw,
            )
        raise ValueError(f"impls: got {impl!r}, expected some of {KNOWN_IMPLS}")

    return fn


def _program(impl: str, shape: Shape, kernel_config=None, cudnn=True):
    """The function timed for `shape.mode`: forward, or forward then the q, k, v gradients."""
    attn = _attention(impl, shape.causal, shape.padded, kernel_config, cudnn)
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


def compile_program(impl: str, shape: Shape, args, kernel_config=None):
    """Lowers and compiles the benchmarked function for concrete inputs.

    For "cudnn", a refusal (cuDNN missing or the case unsupported) falls back to the default
    implementation of `sigjax.softmax_attention`; which one ran is read from the compiled HLO.

    Args:
      impl: an implementation name other than "triton_sigmoid".
      shape: the configuration.
      args: (q, k, v, lengths, do) from `make_inputs`.
      kernel_config: optional `KernelConfig` for the Pallas kernels.

    Returns:
      (compiled, impl_ran, compile_s): the executable, a description of what runs, and the
      seconds spent lowering and compiling.

    Raises:
      Exception: whatever lowering or compiling raises (other than a cuDNN refusal).
    """
    t0 = time.perf_counter()
    note = ""
    try:
        compiled = jax.jit(_program(impl, shape, kernel_config)).lower(*args).compile()
    except Exception as e:
        if impl != "cudnn":
            raise
        note = f" (cudnn refused: {type(e).__name__}: {str(e)[:200]})"
        compiled = jax.jit(_program(impl, shape, cudnn=False)).lower(*args).compile()
    seconds = time.perf_counter() - t0
    backend = jax.default_backend()
    if impl == "cudnn":
        ran = peers.cudnn_ran(compiled.as_text()) + note
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


def prepare(impl: str, shape: Shape, args, *, tol: float = 3e-2, kernel_config=None):
    """Compiles one implementation on a shape and checks it against the float32 reference.

    Args:
      impl: implementation name (not "triton_sigmoid").
      shape: the configuration.
      args: its inputs, from `make_inputs(shape)` (shared by the implementations of a shape).
      tol: see `check_outputs`.
      kernel_config: optional `KernelConfig` for the Pallas kernels.

    Returns:
      (record, compiled): the shape's parameters, "impl", "impl_ran", "compile_s", the check's
      fields and "status" ("ok" or "wrong"); and the executable, to time with `time_callable`.

    Raises:
      Exception: whatever compiling or running raises; the caller records it.
    """
    rec = {"kind": "time", "impl": impl}
    rec.update(shape.params())
    compiled, rec["impl_ran"], rec["compile_s"] = compile_program(impl, shape, args, kernel_config)
    outputs = jax.block_until_ready(compiled(*args))
    rec.update(check_outputs(impl, shape, args, outputs, tol=tol))
    del outputs
    rec["status"] = "ok" if rec["correct"] else "wrong"
    return rec, compiled


def add_timing(rec: dict, shape: Shape, timings: list) -> dict:
    """rec with the timing fields of one or more `time_callable` results pooled: "time_s" the
    median of all their samples, "time_min_s", "time_max_s", "reps" (all samples), "rounds",
    "inner" (of the last), "samples_s"; then "flops" and "tflops"."""
    samples = [x for t in timings for x in t["samples_s"]]
    rec.update(
        time_s=float(np.median(samples)),
        time_min_s=float(np.min(samples)),
        time_max_s=float(np.max(samples)),
        reps=len(samples),
        rounds=len(timings),
        inner=timings[-1]["inner"],
        samples_s=samples,
    )
    rec["flops"] = shape.flops
    rec["tflops"] = shape.flops / rec["time_s"] / 1e12
    return rec


def measure(
    impl: str,
    shape: Shape,
    *,
    reps: int,
    warmup: int = 2,
    tol: float = 3e-2,
    min_sample_s: float = MIN_SAMPLE_S,
    kernel_config=None,
    time_wrong: bool = True,
) -> dict:
    """Compiles, checks against the float32 reference, then times one implementation on a shape
    (`prepare`, then `time_callable` once; the benchmark run times the implementations of a
    shape in alternating rounds instead).

    Args:
      impl: implementation name (not "triton_sigmoid").
      shape: the configuration.
      reps, warmup, min_sample_s: see `time_callable`.
      tol: see `check_outputs`.
      kernel_config: optional `KernelConfig` for the Pallas kernels.
      time_wrong: also time an implementation whose check failed (status "wrong").

    Returns:
      `prepare`'s record with `add_timing`'s fields (when timed).

    Raises:
      Exception: whatever compiling or running raises; the caller records it.
    """
    args = make_inputs(shape)
    rec, compiled = prepare(impl, shape, args, tol=tol, kernel_config=kernel_config)
    if rec["correct"] or time_wrong:
        timing = time_callable(compiled, args, reps=reps, warmup=warmup, min_sample_s=min_sample_s)
        add_timing(rec, shape, [timing])
    return rec


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


def memory_subprocess(impl: str, shapes: list[Shape], deadline: float) -> list[dict]:
    """Runs `measure_memory` for each shape in one fresh process; one record per shape."""
    todo = json.dumps([dataclasses.asdict(s) for s in shapes])
    env = {**peers.child_env(), "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    cmd = [sys.executable, "-m", "eval.kernels", "_memory", impl, todo, str(deadline)]
    lines, err = peers.stream(cmd, env, deadline)
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


def memory_child(impl: str, todo_json: str, deadline: float) -> None:
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
