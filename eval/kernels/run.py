"""The benchmark run: peak memory and TritonSigmoid in subprocesses first, then the JAX timings."""

import pathlib
import sys
import time

import jax

from eval.kernels import measure as measure_lib
from eval.kernels import peers, report
from eval.kernels.specs import Shape, benchmark_shapes, memory_groups, memory_shapes
from sigjax.attention import _pallas


def _xla_too_large(shape: Shape, limit: float) -> bool:
    # The XLA path materialises float32 [B, N, T, S] scores; forward+backward keeps several.
    elems = shape.batch * shape.heads * shape.seq_len**2 * (3 if shape.mode == "fwdbwd" else 1)
    return elems > limit


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
        for impl in jax_impls:
            rec = {"kind": "time", "impl": impl, **shape.params()}
            if time.time() > deadline:
                rec.update(status="skipped", skip_reason="time budget")
            elif impl == "pallas_hopper" and shape.mode == "fwd":
                rec.update(status="skipped", skip_reason="forward is pallas's")
            elif impl in ("pallas_hopper", "pallas_mosaic") and (
                why := _pallas.hopper_unavailable(shape.head_dim, shape.dtype, interpret=interpret)
            ):
                # Else the Triton kernels would run and be reported under the Hopper name.
                rec.update(status="skipped", skip_reason=f"no Hopper kernel: {why}")
            elif impl == "xla" and _xla_too_large(shape, args.xla_max_elems):
                rec.update(
                    status="skipped",
                    skip_reason=f"xla scores B*N*T*S above --xla_max_elems={args.xla_max_elems:g}",
                )
            else:
                try:
                    rec = measure_lib.measure(
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

    md = report.markdown_report(results.meta, results.records)
    (out / "kernels.md").write_text(md)
    try:
        report.plot_tflops(results.records, out / "kernels.png")
    except Exception as e:  # A missing plot must not lose the tables.
        print(f"kernels.png not written: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"wrote {out / 'kernels.json'}, {out / 'kernels.md'}, {out / 'kernels.png'}\n")
    print(report.summary_table(results.records))
    return results.records
