"""The benchmark run: peak memory and TritonSigmoid in subprocesses first, then the JAX timings."""

import math
import pathlib
import sys
import time

import jax

from eval.kernels import measure as measure_lib
from eval.kernels import peers, report
from eval.kernels.specs import Shape, benchmark_shapes, make_inputs, memory_groups, memory_shapes
from eval.kernels.timing import time_callable
from sigjax.attention import _pallas


def _xla_too_large(shape: Shape, limit: float) -> bool:
    # The XLA path materialises float32 [B, N, T, S] scores; forward+backward keeps several.
    elems = shape.batch * shape.heads * shape.seq_len**2 * (3 if shape.mode == "fwdbwd" else 1)
    return elems > limit


def _skip_reason(impl: str, shape: Shape, args, interpret: bool) -> str | None:
    if impl == "pallas_hopper" and shape.mode == "fwd":
        return "forward is pallas's"
    if impl in ("pallas_hopper", "pallas_mosaic") and (
        why := _pallas.hopper_unavailable(shape.head_dim, shape.dtype, interpret=interpret)
    ):
        # Else the Triton kernels would run and be reported under the Hopper name.
        return f"no Hopper kernel: {why}"
    if impl == "xla" and _xla_too_large(shape, args.xla_max_elems):
        return f"xla scores B*N*T*S above --xla_max_elems={args.xla_max_elems:g}"
    return None


def _time_shape(shape: Shape, impls, args, interpret: bool, deadline: float) -> list[dict]:
    """The records of every implementation on one shape.

    Each implementation is compiled and checked first (`measure.prepare`, on shared inputs);
    then all are timed in `args.rounds` rounds of `args.reps / rounds` samples, the order
    reversed every other round, and each one's samples pooled (`measure.add_timing`). Timed one
    after the other, the variant compiled and timed first ran ~5% faster on an H100 whichever it
    was (docs/benchmarks.md run 20); rounds in both orders keep that from favouring either.
    Until 2026-12-06 each implementation was compiled, checked and timed in turn (sigjax, then
    cuDNN).
    """
    records, prepared, inputs = [], [], None
    for impl in impls:
        rec = {"kind": "time", "impl": impl, **shape.params()}
        if time.time() > deadline:
            records.append({**rec, "status": "skipped", "skip_reason": "time budget"})
        elif why := _skip_reason(impl, shape, args, interpret):
            records.append({**rec, "status": "skipped", "skip_reason": why})
        else:
            try:
                inputs = make_inputs(shape) if inputs is None else inputs
                prepared.append(measure_lib.prepare(impl, shape, inputs, tol=args.tol))
            except Exception as e:  # One failed configuration must not cost the run.
                records.append(
                    {**rec, "status": "error", "error": f"{type(e).__name__}: {e}"[:1000]}
                )
    timings = [[] for _ in prepared]
    per_round = max(1, math.ceil(args.reps / args.rounds))
    for r in range(args.rounds):
        if r and time.time() > deadline:  # Every implementation has one round at least.
            break
        order = list(range(len(prepared)))
        for i in order[::-1] if r % 2 else order:
            rec, compiled = prepared[i]
            if "error" in rec:  # Its timing failed in an earlier round.
                continue
            try:
                timings[i].append(
                    time_callable(
                        compiled,
                        inputs,
                        reps=per_round,
                        warmup=args.warmup,
                        min_sample_s=args.min_sample_s,
                    )
                )
            except Exception as e:
                rec.update(status="error", error=f"{type(e).__name__}: {e}"[:1000])
    for (rec, _), timed in zip(prepared, timings, strict=True):
        if "error" not in rec and timed:
            measure_lib.add_timing(rec, shape, timed)
        records.append(rec)
    return records


def benchmark(args, argv=()) -> list[dict]:
    """The benchmark run (see `python -m eval kernels -h`); returns every record it wrote.

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
    interpret = jax.default_backend() != "gpu"  # As sigmoid_attention decides.
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
    results = report.Results(out / "kernels.json", {**report.run_meta(argv), "args": vars(args)})
    mem_deadline = start + args.budget_s * args.memory_share
    for impl in mem_impls:
        if time.time() > mem_deadline:
            for s in mem_shapes:
                rec = {"kind": "memory", "impl": impl, **s.params()}
                results.add({**rec, "status": "skipped", "skip_reason": "memory time budget"})
            continue
        for group in memory_groups(mem_shapes, args.memory_fresh):
            for rec in measure_lib.memory_subprocess(impl, group, mem_deadline):
                results.add(rec)

    if want_triton:
        info, _ = peers.run_triton_sigmoid(
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
        for rec in _time_shape(shape, jax_impls, args, interpret, deadline):
            results.add(rec)

    md = report.markdown_report(results.meta, results.records)
    (out / "kernels.md").write_text(md)
    try:
        report.plot_tflops(results.records, out / "kernels.png")
    except Exception as e:  # A missing plot must not lose the tables.
        print(f"kernels.png not written: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"wrote {out / 'kernels.json'}, {out / 'kernels.md'}, {out / 'kernels.png'}\n")
    print(report.summary_table(results.records))
    return results.records
