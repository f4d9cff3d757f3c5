"""The Hopper forward with q times scale / 2 and the scores' product started at the halved bias
(`fused_forward(q_scaled=True)`, issue 14, thirty-second session) against the forward as it was,
the kernels alone.

Why: per weight the forward computed tanh(scale / 2 * s + b / 2): a multiply-add, the tanh, a
multiply-add for p, a conversion. With q pre-multiplied by scale / 2 (exact at H=64, where it is
1/16) and the accumulator started at b / 2 instead of 0 (the same register moves), tanh takes the
product as it is. The backward's counterpart is timed by dq_rows.py (VARIANTS=rows_tds,rows_tds_qs).

1. Compiled checks against float32 XLA (dense, padding, causal, per-key bias).
2. Timings, ROUNDS rounds (default 3), the two variants' order alternating: H=64, T=4K/8K/16K
   dense and T=8K with the uneven 50%-padding lengths [5300, 2892]; H=128, T=8K (there scale / 2
   is not a power of two: q times it is rounded, so the op does not use it; timed for the record).
One JSON line per result in $OUT/fwd_scaled.jsonl; a table of medians last.
    OUT=/tmp/out python docs/probes/fwd_scaled.py [deadline_s]
"""

import functools
import os
import sys
import time
import traceback

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hopper_fwd  # noqa: E402 (the checks' reference; the forward's call)
from hopper_bwd import emit as _emit  # noqa: E402
from hopper_bwd import inputs, medians, print_medians, scaled_q, time_variant  # noqa: E402

LOG = "fwd_scaled.jsonl"
emit = functools.partial(_emit, log=LOG)
hopper_fwd.emit = emit  # Its checks' records go to this probe's log.
VARIANTS = {"base": {}, "q_scaled": dict(q_scaled=True)}
SHAPES = [(64, 4096, None), (64, 8192, None), (64, 16384, None), (64, 8192, [5300, 2892])]
SHAPES += [(128, 8192, None)]


def checks():
    for args in [
        (1, 1024, 4, 64, [1024], [1024], dict(q_scaled=True)),
        (2, 512, 2, 64, [512, 300], [400, 512], dict(q_scaled=True, causal=True)),
        (2, 384, 3, 64, [1, 384], [200, 384], dict(q_scaled=True, pingpong=False, stages=3)),
        (2, 512, 2, 64, [512, 300], [512, 129], dict(q_scaled=True, per_key_bias=True)),
        (2, 512, 2, 128, [512, 300], [512, 129], dict(q_scaled=True, causal=True)),
    ]:
        try:
            hopper_fwd.check(*args)
        except Exception as e:
            emit(dict(kind="check", args=str(args), error=f"{type(e).__name__}: {e}"[:3000]))
            traceback.print_exc()


def timings(deadline: float, rounds: int):
    names = list(VARIANTS)
    for h, t, lens in SHAPES:
        b, n = 16384 // t, 2048 // h
        lens = lens or [t] * b
        q, k, v, _, ql, kl = inputs(b, t, n, h, lens, lens)
        scale = h**-0.5
        flops = 4 * n * h * sum(x * x for x in lens)
        fns = {
            name: jax.jit(
                functools.partial(hopper_fwd._fused, ql=ql, kl=kl, scale=scale, causal=False, **kw)
            )
            for name, kw in VARIANTS.items()
        }
        for r in range(rounds):
            for name in names[r % 2 :] + names[: r % 2]:
                if time.time() > deadline:
                    return
                rec = dict(kind="time", variant=name, round=r, h=h, t=t, b=b, lens=lens)
                args = (scaled_q(q, VARIANTS[name], scale), k, v)  # Outside the timed call.
                emit(time_variant(rec, fns[name], args, flops, "tflops"))


def table():
    med = medians(LOG, lambda r: (r["h"], r["t"], tuple(r["lens"])))
    print_medians(med, lambda k: f"H={k[0]} T={k[1]} lens={list(k[2])[:2]}", ["base"])


def main():
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 200)
    emit(dict(kind="meta", jax=jax.__version__, device=str(jax.devices()[0].device_kind)))
    checks()
    timings(deadline, int(os.environ.get("ROUNDS", 3)))
    table()


if __name__ == "__main__":
    main()
