"""Shows the Pallas kernel running per shard under shard_map on 2 GPUs (probe script)."""

import re

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import sigjax
from eval.kernels.timing import time_callable

B, T, N, H = 8, 8192, 8, 64
ks = jax.random.split(jax.random.key(0), 3)
q, k, v = (jax.random.normal(kk, (B, T, N, H), jnp.float32).astype(jnp.bfloat16) for kk in ks)
f = lambda q, k, v: sigjax.sigmoid_attention(q, k, v, implementation="pallas")
one = jax.jit(f).lower(q, k, v).compile()
t1 = time_callable(one, (q, k, v), reps=10, warmup=2, min_sample_s=5e-3)["time_s"]
mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
with jax.set_mesh(mesh):
    qs, kk, vs = (jax.device_put(x, NamedSharding(mesh, P("data"))) for x in (q, k, v))
    two = jax.jit(f).lower(qs, kk, vs).compile()
    t2 = time_callable(two, (qs, kk, vs), reps=10, warmup=2, min_sample_s=5e-3)["time_s"]
    out2 = two(qs, kk, vs)
print("output sharding:", out2.sharding)
print(
    "max |1 GPU - 2 GPU|:",
    float(
        jnp.max(
            jnp.abs(one(q, k, v).astype(jnp.float32) - jax.device_get(out2).astype(jnp.float32))
        )
    ),
)
hlo = two.as_text()
calls = [
    line.strip()[:200]
    for line in hlo.splitlines()
    if "custom-call" in line and "triton" in line.lower()
]
print("kernel custom calls in the 2-GPU program (per-device shapes):")
for c in calls:
    print("  ", re.sub(r"backend_config=.*", "", c))
print(
    f"forward B={B} T={T} N={N} H={H}: 1 GPU {t1 * 1e3:.3f} ms, "
    f"2 GPUs (batch split) {t2 * 1e3:.3f} ms, speedup {t1 / t2:.2f}x"
)
