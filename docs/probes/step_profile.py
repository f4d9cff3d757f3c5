"""Which device ops take a training step's time: a jax.profiler trace of N steps, summed by op.

docs/probes/step_parts.py found configs/study_base.py's step at ~165 ms on one H200 (32 x 512
synthetic tokens, ~2.4 TFLOP: ~15 TFLOPS), with the forward alone at ~77 ms and the objective's
terms costing nothing, run under XLA_FLAGS=--xla_gpu_autotune_level=0. This traces `--steps`
whole train steps (after compiling) for each attention and prints, per attention, one JSON line
per device timeline (total busy ns, events) and one per op among the `--top` slowest (total ns,
calls, share of the timeline), read from the trace with `jax.profiler.ProfileData`. On a CPU-only
machine it finds no device plane and prints only the wall time.

  PYTHONPATH=$PWD python docs/probes/step_profile.py --config=configs/study_base.py [--set=...]
      [--hlo_dir=DIR]
"""

import argparse
import collections
import json
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp

from eval._overrides import load_config, override, parse_sets
from sigjax.evaluation._speed import synthetic_batch
from sigjax.training._mesh import single_device_mesh
from sigjax.training._steps import make_setup, train_step


def device_ops(trace_dir: str, top: int) -> list[dict]:
    """Per device timeline of the trace: busy time, and its `top` ops by summed duration."""
    from jax.profiler import ProfileData

    rows = []
    for path in sorted(pathlib.Path(trace_dir).rglob("*.xplane.pb")):
        for plane in ProfileData.from_file(str(path)).planes:
            if not plane.name.startswith("/device:"):
                continue
            for line in plane.lines:
                total, calls = collections.Counter(), collections.Counter()
                for e in line.events:
                    total[e.name] += e.duration_ns
                    calls[e.name] += 1
                busy = sum(total.values())
                if not busy:
                    continue
                rows.append(
                    {
                        "plane": plane.name,
                        "line": line.name,
                        "busy_ns": busy,
                        "events": sum(calls.values()),
                    }
                )
                for name, ns in total.most_common(top):
                    rows.append(
                        {
                            "line": line.name,
                            "op": name[:160],
                            "ns": ns,
                            "calls": calls[name],
                            "share": round(ns / busy, 4),
                        }
                    )
    return rows


def write_hlo(step, args, hlo_dir: str, attention: str) -> None:
    """The compiled step's HLO text, gzipped (the names the trace's ops carry)."""
    import gzip

    path = pathlib.Path(hlo_dir) / f"step_{attention}.hlo.txt.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write(step.lower(*args).compile().as_text())
    print(json.dumps({"attention": attention, "hlo": str(path)}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/study_base.py")
    p.add_argument("--set", action="append", default=[], help="section.field=value override")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--attentions", default="sigmoid,softmax")
    p.add_argument(
        "--hlo_dir",
        default="",
        help="also write each attention's optimized step HLO here (step_<attention>.hlo.txt.gz), "
        "to map the trace's fusion names to the model's ops",
    )
    args = p.parse_args()
    print(json.dumps({"device": str(jax.devices()[0]), "jax": jax.__version__}), flush=True)
    for attention in args.attentions.split(","):
        config = load_config(args.config)
        override(config, {**parse_sets(args.set), "model.attention": attention})
        vocab = int(config.data.get("synthetic", {}).get("n_genes", 1000)) + 3
        mesh = single_device_mesh()
        with jax.set_mesh(mesh):
            setup, state = make_setup(config, vocab, mesh)
            batch = {k: jnp.asarray(v) for k, v in synthetic_batch(config, vocab).items()}
            step = jax.jit(lambda s, b, setup=setup, config=config: train_step(setup, config, s, b))
            jax.block_until_ready(step(state, batch))  # Compile.
            if args.hlo_dir:
                write_hlo(step, (state, batch), args.hlo_dir, attention)
            trace_dir = tempfile.mkdtemp(prefix=f"trace_{attention}_")
            with jax.profiler.trace(trace_dir):
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    out = step(state, batch)
                jax.block_until_ready(out)
                wall = (time.perf_counter() - t0) / args.steps
        print(json.dumps({"attention": attention, "wall_s_per_step": wall, "trace": trace_dir}))
        try:
            rows = device_ops(trace_dir, args.top)
        except Exception as e:  # A trace that cannot be read must not stop the other attention.
            rows = [{"error": f"{type(e).__name__}: {e}"}]
        for row in rows:
            print(json.dumps({"attention": attention, **row}), flush=True)


if __name__ == "__main__":
    main()
