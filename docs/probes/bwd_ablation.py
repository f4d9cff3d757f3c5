"""Where the Hopper backward's time goes: the table's backward timed with one piece of work taken
out at a time (issue 14). The results are wrong by design; only the times mean something. Each
removed piece bounds how much of the kernel's time that piece holds up:
    stock      the table's kernel (H=64: overlap, 2 stages; H=128: shared_dq)
    no_tanh    the sigmoid as one FMA (no special-function unit)
    no_dq_add  dq shares written to shared memory but not added into dq (no TMA reduce-add)
    both       no_tanh and no_dq_add
One process per ablation (module globals are patched before the first trace):
    OUT=/tmp/out python docs/probes/bwd_ablation.py ABLATION
appends one JSON line per head dim to $OUT/bwd_ablation.jsonl (16,384 tokens, T=8192, dense).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hopper_bwd as hb  # noqa: E402 (the probe beside this one)
import jax  # noqa: E402

from pallas_kernels.sigmoid_attention import hopper  # noqa: E402


class _NoReduceAdd:
    """plgpu, except that copies with a reduction (the dq reduce-adds) are skipped."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if name != "copy_smem_to_gmem":
            return attr
        return lambda *a, **kw: None if kw.get("reduction_op") else attr(*a, **kw)


def patch(ablation: str):
    if ablation in ("no_tanh", "both"):
        hopper._sigmoid = lambda s, scale, half_bias: s * (0.125 * scale) + (half_bias + 0.5)
    if ablation in ("no_dq_add", "both"):
        hopper.plgpu = _NoReduceAdd(hopper.plgpu)


def main():
    ablation = sys.argv[1] if len(sys.argv) > 1 else "stock"
    patch(ablation)
    t = 8192
    for h, kw in ((64, dict(stages=2, overlap=True)), (128, dict(shared_dq=True))):
        b, n = 16384 // t, 2048 // h
        q, k, v, do, ql, kl = hb.inputs(b, t, n, h, [t] * b, [t] * b)
        fn = jax.jit(lambda *a, kw=kw, h=h: hopper.fused_backward(*a, scale=h**-0.5, **kw))
        rec = dict(ablation=ablation, h=h, t=t, b=b, n=n, variant=kw, at=time.strftime("%H:%M:%S"))
        flops = 2.5 * 4 * n * h * b * t * t
        args = (q, k, v, hb.key_bias(t, ql, kl), do, ql, kl)
        rec = hb.time_variant(rec, fn, args, flops, "tflops")
        print(json.dumps(rec), flush=True)
        with open(os.path.join(hb.OUT, "bwd_ablation.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
