"""Where the causal forward+backward's time goes at H=128 (issue 14, causal <= 0.6x non-causal).

Run 18 (H200) timed sigjax's causal fwd+bwd at 0.65x its non-causal time at H=128, T=4096, while
the backward kernel alone keeps 0.58 of its time on an H100 (run 19). This times, causal and not,
in one process: sigjax's forward+backward as `eval kernels` does, cuDNN's, the Hopper forward and
backward kernels alone (the difference is the XLA work around the kernels). Run 19's call 2 also
timed a causal mask from 1-D iotas here (monkeypatched; now hopper._mask). With REGS=up,down the
kernels' register split is set (below). One JSON line per timing in $OUT/causal_parts.jsonl,
the compiled HLO of sigjax's forward+backward in $OUT. Optional third argument: the parts to run.
    OUT=/tmp/out REGS=240,24 python docs/probes/causal_parts.py 128 4096 hopper_fwd,hopper_bwd
"""

import json
import os
import sys
import time

import jax
import jax.numpy as jnp

from eval.kernels import measure
from eval.kernels.specs import Shape, make_inputs
from eval.kernels.timing import time_callable
from pallas_kernels.sigmoid_attention import hopper

OUT = os.environ.get("OUT", "/tmp")


# REGS=up,down: both kernels' register split (hopper.FORWARD_REGISTERS, BACKWARD_REGISTERS) set
# to `up` registers per compute warpgroup thread and `down` for the memory warpgroup. Run 19 timed
# 240,24 against 232,40 here (a patched plgpu.set_max_registers then) before the backward took it.
REGS = os.environ.get("REGS", "")
if REGS:
    hopper.FORWARD_REGISTERS = hopper.BACKWARD_REGISTERS = tuple(int(x) for x in REGS.split(","))


def emit(rec):
    rec.update(regs=REGS or "default", device=jax.devices()[0].device_kind)
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
                jax.jit(lambda *a, c=causal: hopper.fused_forward(*a, scale=scale, causal=c)),
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
                    path = os.path.join(OUT, f"hlo_h{h}_t{t}_causal{int(causal)}.txt")
                    with open(path, "w") as f:
                        f.write(compiled.as_text())
                rec.update(time_callable(compiled, args, reps=10, warmup=2, min_sample_s=0.05))
            except Exception as e:  # noqa: BLE001 (recorded, next part)
                rec["error"] = f"{type(e).__name__}: {e}"[:1500]
            emit(rec)


if __name__ == "__main__":
    main()
