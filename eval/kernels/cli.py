"""Kernel benchmark: sigjax's Pallas kernel vs its XLA path, cuDNN softmax and TritonSigmoid.

One run on one device times every implementation on the same shapes and dtype, after checking
each against a float32 XLA reference, and writes under --out:
  kernels.json  every measurement with all its parameters and provenance (commit, versions,
                device), flushed after each one,
  kernels.md    TFLOPS tables with ratio columns, problems, peak memory,
  kernels.png   TFLOPS vs T, one line per implementation, one panel per (H, mode).

  python -m eval kernels --out=DIR [--head_dims=64,128]
      [--seq_lens=1024,2048,4096,8192,16384] [--padding=0,0.25,0.5] [--causal=0,1]
      [--modes=fwd,fwdbwd] [--impls=pallas,xla,cudnn,triton_sigmoid] [--reps=30]
      [--memory_seq_lens=4096,8192,16384] [--budget_s=600] [--triton_sigmoid_path=DIR]
  python -m eval kernels --quick --out=DIR      # tiny shapes, CPU interpret mode
  python -m eval kernels tune --out=DIR --head_dims=128 --seq_lens=8192
      # merges the best configuration per (H, dtype, T bucket) into
      # pallas_kernels/sigmoid_attention/tuned/<device>.json
  (`python -m eval.kernels ...` is the same.)

Shapes (eval/kernels/specs.py) follow TritonSigmoid's benchmark: 16,384 tokens per batch and hidden
2048, so N = 2048 / H and B = 16384 / T. Padding p draws per-sequence lengths (seeded) whose mean
valid fraction is 1 - p. TFLOPS count valid tokens only: 4 N H sum_b len_b^2 for the forward
(half that when causal), x3.5 for forward+backward. Each time is the median of --reps samples
after warm-up on random normal inputs; a sample is several back-to-back calls when one call is
shorter than --min_sample_s, so dispatch overhead does not count. The implementations of a shape
are compiled and checked first, then timed in --rounds rounds (4) of --reps / rounds samples each,
the order reversed every other round: on an H100 the implementation leading a round gained ~2% on
a ratio (docs/benchmarks.md runs 20-21; docs/probes/order_split.py reads each order's ratio back
from the records' samples_s). Implementations:
  pallas          sigjax.sigmoid_attention(implementation="pallas") (interpret mode off GPU)
  pallas_exact    the same with exact_sigmoid=True (exp and divide instead of tanh.approx)
  xla             sigjax.sigmoid_attention(implementation="xla"), the reference at input dtype
  cudnn           sigjax.softmax_attention(implementation="cudnn"); where cuDNN refuses, the
                  automatic implementation, recorded in "impl_ran"
  triton_sigmoid  PyPI triton-sigmoid (torch), timed in a subprocess by _triton_sigmoid_runner.py
Peak memory of forward+backward (B = 1, dense, non-causal) is measured first, in one fresh
subprocess per implementation and head dim over ascending T (or one per T with --memory_fresh), then
TritonSigmoid runs, then the JAX timings: subprocesses go first because this process's JAX
allocator never gives device memory back.
"""

import argparse
import os
import sys

from eval.kernels import specs
from eval.kernels.specs import (
    BENCH_IMPLS,
    HIDDEN,
    KNOWN_IMPLS,
    MIN_SAMPLE_S,
    MODES,
    TOKENS_PER_BATCH,
)

# Quick mode: the shapes of specs.QUICK_SPECS, few samples.
_QUICK_TIMING = dict(reps=3, warmup=1)


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
        prog="python -m eval kernels [tune]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tune", action="store_true", help="sweep KernelConfigs (same as `tune`)")
    p.add_argument(
        "--table",
        default=None,
        help="tune: the JSON table to merge into [pallas_kernels/sigmoid_attention/tuned/"
        "<device>.json; OUT/<device>.json with --quick]",
    )
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
    p.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="timing rounds per shape, the implementations' order reversed every other round",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first [3]")
    p.add_argument("--min_sample_s", type=float, default=MIN_SAMPLE_S, help="shortest timed sample")
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
    grid = specs.QUICK_SPECS if q else specs.FULL_SPECS
    defaults = dict(
        head_dims=list(grid.head_dims),
        seq_lens=list(grid.seq_lens),
        reps=_QUICK_TIMING["reps"] if q else 30,
        warmup=_QUICK_TIMING["warmup"] if q else 3,
        tokens=grid.tokens,
        hidden=grid.hidden,
        memory_seq_lens=list(specs.QUICK_MEMORY_SEQ_LENS if q else specs.FULL_MEMORY_SEQ_LENS),
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("reps", "rounds", "tokens", "hidden"):
        if getattr(args, name) < 1:
            p.error(f"--{name}: got {getattr(args, name)}, expected >= 1")
    return args


def main(argv=None):
    """Entry point of `python -m eval kernels` and `python -m eval.kernels`.

    Args:
      argv: arguments without the program name; default sys.argv[1:].

    Returns:
      The benchmark's records, or tune.json's content in tune mode.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # Set before this process first touches the device (the backend starts lazily): the memory
    # and TritonSigmoid subprocesses need the memory a preallocating JAX would take.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from eval.kernels import measure, run, tune

    if argv and argv[0] == "_memory":  # Internal: the fresh process of a peak-memory run.
        return measure.memory_child(argv[1], argv[2], float(argv[3]))
    args = parse_args(argv)
    return tune.tune(args, argv) if args.tune else run.benchmark(args, argv)


if __name__ == "__main__":
    main()
