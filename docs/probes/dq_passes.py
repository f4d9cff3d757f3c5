"""The Hopper backward's dq buffer passes: dq_buffer.py's Triton kernels (rows of padding skipped)
vs XLA's (every row), in the op's forward+backward and alone (issue 14, thirty-seventh session).

Run 29 (call 5, `padded_gap.py`) timed XLA's zero fill and cast of the float32 dq buffer at
0.115 ms whatever the lengths: 8% of the op's fwd+bwd at H=64, T=4096 with 50% padding. Here, at
each (H, T), dense and with `eval kernels`' 50%-padding lengths: the op's fwd+bwd with
`fused_backward(dq_passes=...)` "valid" and "all", `ROUNDS` rounds with the order alternating
(the first variant timed has run up to ~5% faster, docs/benchmarks.md run 20), and the two passes
alone. Each op variant is traced with hopper.fused_backward patched; the record's `dq_kernels`
counts the Triton passes in its lowered program, so a variant that did not take its passes shows.
One JSON line per result in $OUT/dq_passes.jsonl, then a summary. On the GPU, from the repository
root:   OUT=/tmp/out python docs/probes/dq_passes.py [seconds]
SHAPES (H:T,...), ROUNDS.
"""

import functools
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hopper_bwd import emit as _emit  # noqa: E402
from hopper_bwd import inputs, time_variant  # noqa: E402

import sigjax  # noqa: E402
from eval.kernels.specs import sequence_lengths  # noqa: E402
from pallas_kernels.sigmoid_attention import dq_buffer, hopper  # noqa: E402

emit = functools.partial(_emit, log="dq_passes.jsonl")
VARIANTS = ("valid", "all")


def op_fwdbwd(dq_passes: str, q, k, v, do, ql, kl):
    """The op's fwd+bwd compiled with fused_backward(dq_passes=...), and how many of dq_buffer's
    Triton passes its lowered program holds."""
    real = hopper.fused_backward

    def loss(q, k, v):
        out = sigjax.sigmoid_attention(
            q, k, v, query_seq_lengths=ql, key_value_seq_lengths=kl, implementation="pallas"
        )
        return jnp.sum(out.astype(jnp.float32) * do.astype(jnp.float32))

    hopper.fused_backward = functools.partial(real, dq_passes=dq_passes)
    jax.clear_caches()  # No trace of the op under the other variant is reused.
    try:
        lowered = jax.jit(jax.value_and_grad(loss, (0, 1, 2))).lower(q, k, v)
    finally:
        hopper.fused_backward = real
    return lowered.compile(), lowered.as_text().count("sigmoid_attention_dq_")


def passes(dq_passes: str, shape, ql, scale=0.125):
    def fn(x, ql):
        if dq_passes == "valid":
            zero = dq_buffer.zeroed(shape, ql)
            return zero, dq_buffer.cast(x, ql, scale=scale, dtype=jnp.bfloat16)
        return jnp.zeros(shape, jnp.float32), (x * scale).astype(jnp.bfloat16)

    return jax.jit(fn)


def main():
    emit(dict(kind="meta", jax=jax.__version__, device=str(jax.devices()[0].device_kind)))
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 150)
    shapes = os.environ.get("SHAPES", "64:4096,128:4096,64:8192,128:8192")
    rounds = int(os.environ.get("ROUNDS", 2))
    summary = []
    for h, t in (map(int, s.split(":")) for s in shapes.split(",")):
        b, n = 16384 // t, 2048 // h
        for kind, lens in (("dense", [t] * b), ("pad50", sequence_lengths(b, t, 0.5))):
            if time.time() > deadline:
                break
            lens = [int(x) for x in lens]
            q, k, v, do, ql, kl = inputs(b, t, n, h, lens, lens)
            flops = 3.5 * 4 * n * h * sum(x * x for x in lens)
            fns = {p: op_fwdbwd(p, q, k, v, do, ql, kl) for p in VARIANTS}
            times = {p: [] for p in VARIANTS}
            for r in range(rounds):
                for p in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                    fn, count = fns[p]
                    rec = dict(kind="time", run="fwdbwd_op", dq_passes=p, dq_kernels=count)
                    rec.update(h=h, t=t, lengths=kind, lens=lens, round=r)
                    rec = time_variant(rec, fn, (q, k, v), flops, "tf")
                    emit(rec)
                    if "time_s" in rec:
                        times[p].append(rec["time_s"])
            for p in VARIANTS:
                x = jnp.zeros(q.shape, jnp.float32)
                rec = dict(kind="time", run="passes", dq_passes=p, h=h, t=t, lengths=kind)
                emit(time_variant(rec, passes(p, q.shape, ql), (x, ql), 0.0, "tf"))
            if all(times.values()):
                ratio = statistics.median(times["valid"]) / statistics.median(times["all"])
                summary.append((h, t, kind, ratio))
                emit(dict(kind="ratio", h=h, t=t, lengths=kind, valid_over_all=ratio))
    for h, t, kind, ratio in summary:
        print(f"H={h} T={t} {kind}: fwd+bwd time valid / all = {ratio:.3f}")


if __name__ == "__main__":
    main()
