"""Where the causal forward+backward's time goes at H=128 (issue 14, causal <= 0.6x non-causal).

Run 18 (H200) timed sigjax's causal fwd+bwd at 0.65x its non-causal time at H=128, T=4096, while
the backward kernel alone keeps 0.58 of its time on an H100 (run 19). This times, causal and not,
in one process: sigjax's forward+backward as `eval kernels` does, cuDNN's, the Hopper forward and
backward kernels alone, and the difference (the XLA work around the kernels). With MASK=vectors,
the kernels' causal mask is built from two 1-D iotas broadcast to the tile instead of two 2-D ones
(monkeypatched here; the kernels on main are untouched). One JSON line per timing in
$OUT/causal_parts.jsonl, the compiled HLO of sigjax's causal fwd+bwd in $OUT.
    OUT=/tmp/out MASK=iota2d python docs/probes/causal_parts.py 128 4096
"""

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental.pallas import mosaic_gpu as plgpu

from eval.kernels import measure
from eval.kernels.specs import Shape, make_inputs
from eval.kernels.timing import time_callable
from pallas_kernels.sigmoid_attention import hopper

OUT = os.environ.get("OUT", "/tmp")
MASK = os.environ.get("MASK", "iota2d")


def mask_from_vectors(
    p, row_start, col_start, rows_are_keys: bool, interpreted: bool, causal=True, kv_len=None
):
    """hopper._mask with row and column indices from 1-D iotas (a thread holds few distinct ones)."""
    row_layout = None if interpreted else plgpu.Layout.WGMMA.reduce(1)
    col_layout = None if interpreted else plgpu.Layout.WGMMA.reduce(0)
    rows = plgpu.broadcasted_iota(jnp.int32, (p.shape[0],), 0, layout=row_layout) + row_start
    cols = plgpu.broadcasted_iota(jnp.int32, (p.shape[1],), 0, layout=col_layout) + col_start
    rows = lax.broadcast_in_dim(rows, p.shape, [0])
    cols = lax.broadcast_in_dim(cols, p.shape, [1])
    queries, keys = (cols, rows) if rows_are_keys else (rows, cols)
    keep = keys <= queries if causal else None
    if kv_len is not None:
        keep = keys < kv_len if keep is None else keep & (keys < kv_len)
    return jnp.where(keep, p, 0.0)


if MASK == "vectors":
    hopper._mask = mask_from_vectors


def emit(rec):
    rec.update(mask=MASK, device=jax.devices()[0].device_kind)
    print(json.dumps(rec), flush=True)
    with open(os.path.join(OUT, "causal_parts.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")


def main():
    h, t = int(sys.argv[1]), int(sys.argv[2])
    parts = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    b, n = 16384 // t, 2048 // h
    scale = h**-0.5
    for causal in (False, True):
        shape = Shape(h, n, t, b, 0.0, causal, "fwdbwd", "bfloat16", (t,) * b)
        q, k, v, lens, do = make_inputs(shape)
        half = jnp.full((b,), 0.5 * -jnp.log(float(t)), jnp.float32)
        key_half = jnp.broadcast_to(half[:, None], (b, t))
        fns = {
            "sigjax_fwdbwd": (jax.jit(measure._program("pallas", shape)), (q, k, v, lens, do)),
            "cudnn_fwdbwd": (jax.jit(measure._program("cudnn", shape)), (q, k, v, lens, do)),
            "hopper_fwd": (
                jax.jit(
                    lambda *a, c=causal: hopper.fused_forward(*a, scale=scale, causal=c)
                ),
                (q, k, v, half, lens, lens),
            ),
            "hopper_bwd": (
                jax.jit(
                    lambda *a, c=causal: hopper.fused_backward(
                        *a, scale=scale, causal=c, shared_dq=h == 128
                    )
                ),
                (q, k, v, key_half, do, lens, lens),
            ),
        }
        for name, (fn, args) in fns.items():
            if parts and name not in parts:
                continue
            rec = dict(part=name, h=h, t=t, b=b, n=n, causal=causal)
            try:
                t0 = time.perf_counter()
                compiled = fn.lower(*args).compile()
                rec["compile_s"] = time.perf_counter() - t0
                if name == "sigjax_fwdbwd":
                    path = os.path.join(OUT, f"hlo_{MASK}_h{h}_t{t}_causal{int(causal)}.txt")
                    with open(path, "w") as f:
                        f.write(compiled.as_text())
                rec.update(time_callable(compiled, args, reps=10, warmup=2, min_sample_s=0.05))
            except Exception as e:  # noqa: BLE001 (recorded, next part)
                rec["error"] = f"{type(e).__name__}: {e}"[:1500]
            emit(rec)


if __name__ == "__main__":
    main()
