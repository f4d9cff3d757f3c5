"""One attention's whole training step under this process's XLA_FLAGS: time, MFU, GPU time by part.

The 161.5M step's non-attention part is ~130 ms of ~310 (docs/benchmarks.md run 15: the matmuls ~77
ms, LayerNorms, GELU, bias adds and the rest ~52 ms; its profile's wall time exceeded the GPU's
busy time by ~4%). Compiler options might move these: cuBLASLt epilogues (bias and GELU folded into
the matmuls), cuBLAS instead of XLA's Triton GEMM fusions, cuDNN LayerNorm. XLA reads XLA_FLAGS
once per process, so a device script runs this once per flag set (run47_flags.sh). It times
`--repeats` samples of `--steps` steps as `eval train-speed` does (donated state, median), then
traces `--trace_steps` more and sums their device time into attention (the sigjax or cuDNN
kernels), matmuls (cuBLAS/nvjet and XLA GEMM fusions) and the rest, with the rest's largest ops.
One JSON line.

Run 25 (docs/benchmarks.md, one H100): cuBLASLt, no Triton GEMMs, both, cuDNN LayerNorm: none
moved the 161.5M step beyond the baseline's own spread (0.3070-0.3094 s against 0.3077/0.3086 s);
busy 303 of 308 ms.

  XLA_FLAGS=... PYTHONPATH=$PWD python docs/probes/xla_flags.py --config=configs/stress_160m.py
      [--attention=sigmoid] [--steps=10] [--repeats=3] [--trace_steps=3] [--set=...]
"""

import argparse
import json
import os
import tempfile
import time

import jax
from step_profile import device_ops

from eval._overrides import load_config, override, parse_sets
from sigjax.evaluation._speed import _prepared_step

ATTENTION_OPS = ("sigmoid_attention", "cudnn", "sdpa", "fmha", "flash")
MATMUL_OPS = ("nvjet", "gemm", "cutlass", "xmma", "cublas", "sm90_")


def part(op: str) -> str:
    """attention, matmul or rest, by the kernel's or fusion's name."""
    name = op.lower()
    if any(s in name for s in ATTENTION_OPS):
        return "attention"
    return "matmul" if any(s in name for s in MATMUL_OPS) else "rest"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/stress_160m.py")
    p.add_argument("--set", action="append", default=[], help="section.field=value override")
    p.add_argument("--attention", default="sigmoid")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--trace_steps", type=int, default=3)
    p.add_argument("--label", default="")
    args = p.parse_args()
    config = load_config(args.config)
    override(config, {**parse_sets(args.set), "model.attention": args.attention})
    t0 = time.perf_counter()
    sample, record = _prepared_step(config, warmup=2, padding=0.0)
    compile_s = time.perf_counter() - t0
    rec = record([sample(args.steps) for _ in range(args.repeats)])
    trace_dir = tempfile.mkdtemp(prefix="trace_")
    with jax.profiler.trace(trace_dir):
        sample(args.trace_steps)
    n = args.trace_steps
    parts, rest, busy, events = {"attention": 0.0, "matmul": 0.0, "rest": 0.0}, [], 0.0, 0
    for row in device_ops(trace_dir, top=100_000):
        if "op" in row:
            parts[part(row["op"])] += row["ns"] / n / 1e6
            if part(row["op"]) == "rest":
                rest.append((row["ns"] / n / 1e6, row["op"], row["calls"] // n))
        else:
            busy += row["busy_ns"] / n / 1e6
            events += row["events"] // n
    rest.sort(reverse=True)
    out = {
        "label": args.label,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "device": getattr(jax.devices()[0], "device_kind", ""),
        "jax": jax.__version__,
        "attention": args.attention,
        "compile_s": round(compile_s, 1),
        "step_time_s": rec["step_time_s"],
        "step_times_s": rec["step_times_s"],
        "mfu": rec["mfu"],
        "busy_ms_per_step": round(busy, 2),
        "kernels_per_step": events,
        "parts_ms_per_step": {k: round(v, 2) for k, v in parts.items()},
        "rest_top": [[round(ms, 3), op[:80], calls] for ms, op, calls in rest[:15]],
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
