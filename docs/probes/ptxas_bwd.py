"""Compiles one Hopper backward variant at H=64 or 128 (T=1024) so that Mosaic GPU's ptxas report
(registers, spills, wgmma serialisation warnings) can be dumped: run with
MOSAIC_GPU_DUMP_PTXAS=1 MOSAIC_GPU_DUMP_TO=DIR, one process per variant (issue 14).
    python docs/probes/ptxas_bwd.py H '{"pipeline": true}'
"""

import json
import sys

import jax
import jax.numpy as jnp

from pallas_kernels.sigmoid_attention import hopper

h, variant = int(sys.argv[1]), json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
b, t, n = 1, 1024, 2
x = jnp.ones((b, t, n, h), jnp.bfloat16)
lens = jnp.full((b,), t, jnp.int32)
bias = jnp.zeros((b, t), jnp.float32)
fn = jax.jit(lambda *a: hopper.fused_backward(*a, scale=h**-0.5, **variant))
out = jax.block_until_ready(fn(x, x, x, bias, x, lens, lens))
print(h, variant, "finite:", all(bool(jnp.all(jnp.isfinite(o.astype(jnp.float32)))) for o in out))
