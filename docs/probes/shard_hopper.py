"""Sigmoid attention forward+backward per shard on 2 GPUs: the Hopper kernels vs the Triton ones.

Probe for an `nvidia-h200-x2` call (issue 14). Since 2026-12-05 (nineteenth session) inputs
sharded over several GPUs take the Hopper (Mosaic GPU) kernels per shard; before, the Triton
kernels. For each kernel family and a batch split over 2 GPUs (and on 1 GPU for reference): the
time of forward+backward, the kernels in the compiled program, and the largest difference of the
2-GPU results from the 1-GPU ones (output and q/k/v gradients, relative to their largest value).
One JSON line per (kernels, devices) to stdout and, if $OUT is set, $OUT/shard_hopper.jsonl.

  python3 docs/probes/shard_hopper.py [B T N H]        (defaults 8 8192 8 64: the base model at 8K)
"""

import dataclasses
import json
import os
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import sigjax
from eval.kernels.timing import time_callable
from sigjax.attention import _pallas

B, T, N, H = (int(x) for x in sys.argv[1:5]) if len(sys.argv) > 4 else (8, 8192, 8, 64)


def emit(rec: dict) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "shard_hopper.jsonl"), "a") as f:
            f.write(line + "\n")


def main() -> None:
    keys = jax.random.split(jax.random.key(0), 4)
    q, k, v, ct = (jax.random.normal(kk, (B, T, N, H), jnp.float32) for kk in keys)
    q, k, v = (x.astype(jnp.bfloat16) for x in (q, k, v))
    lens = jnp.asarray(np.random.default_rng(0).integers(T // 2, T + 1, size=B), jnp.int32)
    table = _pallas.table_config(H, jnp.bfloat16, T, interpret=False)
    configs = {
        "hopper": dataclasses.replace(table, hopper_bwd=True, hopper_fwd=True),
        "triton": dataclasses.replace(table, hopper_bwd=False, hopper_fwd=False),
    }
    valid = 4.0 * N * H * float(np.sum(np.asarray(lens, np.float64) ** 2)) * 3.5
    for name, config in configs.items():

        def loss(q, k, v, ql, ct, config=config):
            out = sigjax.sigmoid_attention(
                q,
                k,
                v,
                query_seq_lengths=ql,
                key_value_seq_lengths=ql,
                implementation="pallas",
                kernel_config=config,
            )
            return jnp.sum(out.astype(jnp.float32) * ct), out

        fn = jax.jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))
        one = fn.lower(q, k, v, lens, ct).compile()
        ref = jax.device_get(one(q, k, v, lens, ct))
        runs = [("1 GPU", one, (q, k, v, lens, ct))]
        if len(jax.devices()) >= 2:
            mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
            with jax.set_mesh(mesh):
                shard = NamedSharding(mesh, P("data"))
                args = [jax.device_put(x, shard) for x in (q, k, v, lens, ct)]
                two = fn.lower(*args).compile()
                runs.append(("2 GPUs, batch split", two, args))
        for devices, compiled, args in runs:
            rec = {"kernels": name, "devices": devices, "B": B, "T": T, "N": N, "H": H}
            text = compiled.as_text()
            rec["custom_calls"] = sorted(set(re.findall(r'custom_call_target="([^"]+)"', text)))
            try:
                got = jax.device_get(compiled(*args))
                (_, out), grads = got
                (_, ref_out), ref_grads = ref
                rec["max_rel_diff_vs_1gpu"] = max(
                    float(np.max(np.abs(np.float32(a) - np.float32(b))))
                    / max(float(np.max(np.abs(np.float32(b)))), 1e-6)
                    for a, b in zip((out, *grads), (ref_out, *ref_grads), strict=True)
                )
                rec.update(time_callable(compiled, args, reps=5, warmup=2, min_sample_s=0.05))
                rec["tflops_valid"] = valid / rec["time_s"] / 1e12
            except Exception as e:  # noqa: BLE001 (a probe reports and goes on)
                rec["error"] = f"{type(e).__name__}: {e}"[:500]
            emit(rec)


if __name__ == "__main__":
    main()
