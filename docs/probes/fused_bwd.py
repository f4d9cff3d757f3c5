"""Split vs fused (rotated atomic dQ) backward against cuDNN, on the benchmark's shapes (issue 14).

  OUT=/tmp/out python docs/probes/fused_bwd.py [--budget_s=300] [--reps=10]

Stage 1, dense T=8192 per head dim: the table's configuration (split backward), cuDNN softmax,
the fused backward over a small grid of dK/dV tiles, warps and stages, and the fused backward in
the old unrotated order (every key block starting at query block 0) with the table's tiles.
Stage 2, T=4096 and 50% padding: the table, cuDNN and the two best fused candidates of stage 1.
Every candidate is checked against the float32 reference first (`eval.kernels.measure`); rows go
to $OUT/fused_bwd.jsonl as they finish, a table is printed last.

The rotated order (each key block starting at its own query block) and its switch
`backward.ROTATE_FUSED_DQ` existed from `faf6c3f` to `bae3af3`; run 8 measured it no faster than
the unrotated order at equal tiles, and it was removed. On later commits the "rotated" rows are
the plain fused backward.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import time

import jax

from eval.kernels import measure as measure_lib
from eval.kernels.specs import benchmark_shapes
from pallas_kernels.sigmoid_attention import backward
from pallas_kernels.sigmoid_attention import config as config_lib

FUSED_GRID = [
    dict(block_q_dkv=bq, block_k_dkv=bk, num_warps_bwd=w, num_stages_bwd=st)
    for bq in (32, 64)
    for bk in (64, 128)
    for w in (4, 8)
    for st in (2,)
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--budget_s", type=float, default=300)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--head_dims", default="128,64")
    args = p.parse_args()
    out = pathlib.Path(os.environ.get("OUT", "/tmp/out"))
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "fused_bwd.jsonl"
    deadline = time.time() + args.budget_s
    device = jax.devices()[0].device_kind
    rows = []

    def run(label, impl, shape, kc=None, rotate=True):
        if time.time() > deadline:
            return None
        if hasattr(backward, "ROTATE_FUSED_DQ"):  # Only on faf6c3f..bae3af3 (see above).
            backward.ROTATE_FUSED_DQ = rotate
        rec = {"label": label, "impl": impl, "device": device, **shape.params()}
        rec.pop("lengths")
        if kc is not None:
            rec["config"] = dataclasses.asdict(kc)
        try:
            rec.update(
                measure_lib.measure(impl, shape, reps=args.reps, kernel_config=kc, time_wrong=False)
            )
            rec.pop("lengths", None)
        except Exception as e:  # A candidate that fails is recorded, not fatal.
            rec.update(status="error", error=f"{type(e).__name__}: {e}"[:400])
        finally:
            if hasattr(backward, "ROTATE_FUSED_DQ"):
                backward.ROTATE_FUSED_DQ = True
        rows.append(rec)
        with rows_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(
            f"{label:28s} H={shape.head_dim} T={shape.seq_len} pad={shape.padding} {shape.mode:6s}"
            f" {rec.get('status')} {rec.get('tflops', 0):.1f} TFLOPS"
            f" err={rec.get('worst_rel_err', float('nan')):.1e} {rec.get('error', '')[:200]}",
            flush=True,
        )
        return rec

    for h in (int(x) for x in args.head_dims.split(",")):
        ranked = []
        for t, pad, stage in ((8192, 0.0, 1), (4096, 0.0, 2), (8192, 0.5, 2)):
            fwd, fb = benchmark_shapes([h], [t], [pad], [False], ["fwd", "fwdbwd"])
            table = config_lib.default_config(h, "bfloat16", t, device)
            run("cudnn", "cudnn", fwd)
            run("pallas table", "pallas", fwd, table)
            run("cudnn", "cudnn", fb)
            run("pallas table (split)", "pallas", fb, table)
            if stage == 1:
                unrot = dataclasses.replace(table, fused_bwd=True)
                run("fused unrotated (table)", "pallas", fb, unrot, rotate=False)
                for over in FUSED_GRID:
                    kc = dataclasses.replace(table, fused_bwd=True, **over)
                    rec = run("fused " + _short(over), "pallas", fb, kc)
                    if rec and rec.get("status") == "ok":
                        ranked.append((rec["tflops"], over))
                ranked.sort(key=lambda x: -x[0])
            else:
                for _, over in ranked[:2]:
                    kc = dataclasses.replace(table, fused_bwd=True, **over)
                    run("fused " + _short(over), "pallas", fb, kc)

    print("\n| H | T | pad | mode | label | TFLOPS | / cuDNN |")
    print("|---|---|---|---|---|---|---|")
    cudnn = {
        (r["head_dim"], r["seq_len"], r["padding"], r["mode"]): r.get("tflops")
        for r in rows
        if r["impl"] == "cudnn"
    }
    for r in rows:
        key = (r["head_dim"], r["seq_len"], r["padding"], r["mode"])
        tf, ref = r.get("tflops"), cudnn.get(key)
        ratio = f"{tf / ref:.2f}" if tf and ref else ""
        tf_s = f"{tf:.0f}" if tf else r.get("status", "")
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {r['label']} | {tf_s} | {ratio} |")


def _short(over: dict) -> str:
    return (
        f"{over['block_q_dkv']}x{over['block_k_dkv']}/{over['num_warps_bwd']}w"
        f"/{over['num_stages_bwd']}s"
    )


if __name__ == "__main__":
    main()
