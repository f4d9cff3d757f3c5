"""Compiles one Hopper forward variant at H=64 or 128 (T=1024) so that Mosaic GPU's ptxas report
(registers, spills, wgmma serialisation warnings) can be dumped: run with
MOSAIC_GPU_DUMP_PTXAS=1, one process per variant (issue 14). The backward's is ptxas_bwd.py.
    python docs/probes/ptxas_fwd.py H '{"causal": true}'
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
half_bias = jnp.zeros((b,), jnp.float32)
fn = jax.jit(lambda *a: hopper.fused_forward(*a, scale=h**-0.5, **variant))
out = jax.block_until_ready(fn(x, x, x, half_bias, lens, lens))
print(h, variant, "finite:", bool(jnp.all(jnp.isfinite(out.astype(jnp.float32)))))
