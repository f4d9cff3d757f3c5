"""Where padded batches lose speed: Hopper kernels alone vs the whole op, equal vs uneven lengths.

Probe for a one-GPU call (issue 14). In run 11 the Mosaic forward alone kept 93% of its dense
rate with 50% padding as equal lengths ([4096, 4096] at T=8192, `hopper_fwd.py`), while `python
-m eval kernels` (the whole op, uneven lengths [5300, 2892]) kept 76% forward and ~72% backward.
A list-scheduling estimate of the programs explains 3-5% of that (docs/benchmarks.md, "What the
50%-padding bar asks"). Here, at each (H, T) and for dense, equal and `eval kernels`' uneven
lengths (50% padding): the forward kernel alone, the op's forward, the backward kernel alone
(with the table's shared_dq and dq_rows), and the op's forward+backward, each in TFLOPS on valid
tokens and as the fraction of its own dense rate kept. `dq_passes` times XLA work like that around
the backward kernel's float32 dq buffer, whatever the lengths: a zero fill of B*T*N*H float32 values
and a scaled 16-bit cast (reading q and do, as many bytes as the real pass's float32 read). One JSON
line per result in $OUT/padded_gap.jsonl (via hopper_bwd.emit). Run on the GPU from the repository
root:
    OUT=/tmp/out python docs/probes/padded_gap.py [seconds]
SHAPES (H:T,...), TOKENS (per batch, default 16384) and HIDDEN (N * H, default 2048) change the
shapes; DRY=1 sends the kernels to Mosaic GPU's interpreter (a CPU dry run of tiny shapes).
"""

import functools
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hopper_bwd import emit as _emit  # noqa: E402
from hopper_bwd import inputs, key_bias, time_variant  # noqa: E402

import sigjax  # noqa: E402
from eval.kernels.specs import sequence_lengths  # noqa: E402
from pallas_kernels.sigmoid_attention import hopper  # noqa: E402
from sigjax.attention import _pallas  # noqa: E402

emit = functools.partial(_emit, log="padded_gap.jsonl")


def op_loss(q, k, v, do, ql, kl):
    out = sigjax.sigmoid_attention(
        q, k, v, query_seq_lengths=ql, key_value_seq_lengths=kl, implementation="pallas"
    )
    return jnp.sum(out.astype(jnp.float32) * do.astype(jnp.float32))


def runs(h, t, scale):
    """(name, flops multiple of the forward's, fn(q, k, v, do, ql, kl)) of each timed program."""
    config = _pallas.table_config(h, jnp.bfloat16, t, interpret=False)
    table = dict(shared_dq=config.hopper_shared_dq, dq_rows=config.hopper_dq_rows)

    def fwd_kernel(q, k, v, do, ql, kl):
        half = 0.5 * -jnp.log(kl.astype(jnp.float32))
        return hopper.fused_forward(q, k, v, half, ql, kl, scale=scale)

    def bwd_kernel(q, k, v, do, ql, kl):
        hb = key_bias(t, ql, kl)
        return hopper.fused_backward(q, k, v, hb, do, ql, kl, scale=scale, **table)

    def op_fwd(q, k, v, do, ql, kl):
        return sigjax.sigmoid_attention(
            q, k, v, query_seq_lengths=ql, key_value_seq_lengths=kl, implementation="pallas"
        )

    def dq_passes(q, k, v, do, ql, kl):  # The backward's XLA work on its float32 dq buffer alone.
        buffer = (q.astype(jnp.float32) + do.astype(jnp.float32)) * 0.5
        return jnp.zeros(q.shape, jnp.float32), (buffer * scale).astype(q.dtype)

    op_fwdbwd = jax.value_and_grad(op_loss, (0, 1, 2))
    return [
        ("fwd_kernel", 1.0, fwd_kernel),
        ("fwd_op", 1.0, op_fwd),
        ("bwd_kernel", 2.5, bwd_kernel),
        ("fwdbwd_op", 3.5, op_fwdbwd),
        ("dq_passes", 2.5, dq_passes),
    ]


def _dry_run():
    """CPU: the Hopper kernels through Mosaic GPU's interpreter (plumbing only, no timing)."""
    from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams

    for name in ("fused_forward", "fused_backward"):
        real = getattr(hopper, name)
        setattr(hopper, name, functools.partial(real, interpret=InterpretGPUParams()))


def main():
    if os.environ.get("DRY") == "1":
        _dry_run()
    emit(dict(kind="meta", jax=jax.__version__, device=str(jax.devices()[0].device_kind)))
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 120)
    shapes = os.environ.get("SHAPES", "128:8192,64:8192,64:4096,128:4096")
    for h, t in (map(int, s.split(":")) for s in shapes.split(",")):
        b = int(os.environ.get("TOKENS", 16384)) // t
        n = int(os.environ.get("HIDDEN", 2048)) // h
        lengths = {
            "dense": [t] * b,
            "equal": [t // 2] * b,
            "uneven": [int(x) for x in sequence_lengths(b, t, 0.5)],
        }
        dense_rate = {}
        for kind, lens in lengths.items():
            if time.time() > deadline:
                return
            q, k, v, do, ql, kl = inputs(b, t, n, h, lens, lens)
            fwd_flops = 4 * n * h * sum(x * x for x in lens)
            for name, mult, fn in runs(h, t, h**-0.5):
                rec = dict(kind="time", run=name, lengths=kind, lens=lens, h=h, t=t, b=b, n=n)
                rec = time_variant(rec, jax.jit(fn), (q, k, v, do, ql, kl), mult * fwd_flops, "tf")
                if "tf" in rec:
                    dense_rate.setdefault(name, rec["tf"])
                    rec["kept_of_dense"] = rec["tf"] / dense_rate[name]
                emit(rec)


if __name__ == "__main__":
    main()
