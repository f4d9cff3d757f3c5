"""Does slicing the fused QKV projection cost the step? One attention block, two layouts.

Until `7e79f26` the model projected x with one [E, 3E] matmul and sliced q, k, v out of its
[B, L, 3, N, H] result (`sigjax.model._layers.SelfAttention`); the attention kernels (Mosaic GPU
sigmoid, cuDNN softmax) take contiguous [B, L, N, H] arrays, so XLA copies each slice in the
forward and concatenates dq, dk, dv in the backward. Run 13's 161.5M profile has a
`loop_slice_fusion` at ~3 ms per step.
This times value_and_grad of x -> projection -> attention -> out projection for:
  fused: one matmul and slices (the old layout);
  split: three matmuls from column blocks of the same [E, 3E] kernel (q, k, v come out contiguous;
         same parameters; the model's layout since run 14 measured it, docs/benchmarks.md).
per attention (sigmoid Pallas, softmax cuDNN), at the 161.5M config's shapes by default
(B=8, L=8192, E=1024, N=16, bf16, dense). One JSON line per result in $OUT/qkv_layout.jsonl.
    OUT=/tmp/out PYTHONPATH=$PWD python docs/probes/qkv_layout.py [B L E N]
On a CPU it runs the XLA attention at the shapes given (a plumbing check, not a timing).
"""

import json
import os
import sys

import jax
import jax.numpy as jnp

from eval.kernels.timing import time_callable
from sigjax.model._layers import attend

OUT = os.environ.get("OUT", "/tmp")


def block(layout: str, attention: str, implementation, n: int):
    """value_and_grad over (qkv kernel, out kernel) of one attention block with `layout`."""

    def loss(w, wo, x, lengths, dy):
        b, length, e = x.shape
        if layout == "fused":
            qkv = (x @ w).reshape(b, length, 3, n, e // n)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        else:
            q, k, v = (
                (x @ w[:, i * e : (i + 1) * e]).reshape(b, length, n, e // n) for i in range(3)
            )
        out = attend(q, k, v, lengths, attention=attention, implementation=implementation)
        y = out.reshape(b, length, e) @ wo
        return jnp.sum(y.astype(jnp.float32) * dy.astype(jnp.float32))

    return jax.value_and_grad(loss, argnums=(0, 1))


def main():
    b, length, e, n = (int(a) for a in sys.argv[1:5]) if len(sys.argv) > 4 else (8, 8192, 1024, 16)
    gpu = jax.devices()[0].platform == "gpu"
    ks = jax.random.split(jax.random.key(0), 4)
    bf = jnp.bfloat16
    x = jax.random.normal(ks[0], (b, length, e), bf)
    dy = jax.random.normal(ks[1], (b, length, e), bf)
    w = (jax.random.normal(ks[2], (e, 3 * e), jnp.float32) * e**-0.5).astype(bf)
    wo = (jax.random.normal(ks[3], (e, e), jnp.float32) * e**-0.5).astype(bf)
    lengths = jnp.full((b,), length, jnp.int32)
    results = {}
    for attention, impl in (("sigmoid", "pallas"), ("softmax", "cudnn")):
        impl = impl if gpu else "xla"
        for layout in ("fused", "split"):
            rec = {"attention": attention, "implementation": impl, "layout": layout}
            rec.update(b=b, length=length, e=e, n=n, device=str(jax.devices()[0]))
            try:
                fn = jax.jit(block(layout, attention, impl, n))
                args = (w, wo, x, lengths, dy)
                grads = fn(*args)[1]
                results[(attention, layout)] = grads
                t = time_callable(fn, args, reps=5, warmup=1, min_sample_s=0.2)
                rec["ms"] = round(1e3 * t["time_s"], 3)
                ref = results.get((attention, "fused"))
                if layout == "split" and ref is not None:
                    diff = grads[0].astype(jnp.float32) - ref[0].astype(jnp.float32)
                    rec["max_abs_diff_dqkv"] = float(jnp.max(jnp.abs(diff)))
            except Exception as err:  # One failing variant must not hide the others.
                rec["error"] = f"{type(err).__name__}: {err}"[:300]
            print(json.dumps(rec), flush=True)
            with open(os.path.join(OUT, "qkv_layout.jsonl"), "a") as f:
                f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
