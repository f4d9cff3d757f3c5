"""The Triton (portable) split backward with ds from w = tanh(logit / 2) (`tanh_ds`, on by default
with the approximate sigmoid since the thirty-second session) against ds from p, the kernels alone
(issue 14). On a Hopper GPU the op runs the Mosaic GPU backward instead; this times what other GPUs
(and head dims the Hopper kernels do not take) run.

1. Compiled checks of both forms against float32 XLA gradients (padding, causal with a bias
   gradient; the fused dq variant).
2. Timings, ROUNDS rounds (default 3), order alternating: H=64 and H=128, T=8192, dense and with the
   uneven 50%-padding lengths [5300, 2892]; the table's configuration.
One JSON line per result in $OUT/triton_tds.jsonl; a table of medians last.
    OUT=/tmp/out python docs/probes/triton_tds.py [deadline_s]
"""

import dataclasses
import functools
import os
import sys
import time
import traceback

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hopper_bwd  # noqa: E402 (inputs, checks, timing, tables)

from pallas_kernels import sigmoid_attention as kernels  # noqa: E402

LOG = "triton_tds.jsonl"
emit = functools.partial(hopper_bwd.emit, log=LOG)
FORMS = {"ds_from_p": False, "tanh_ds": True}


def backward(q, k, v, hb, do, ql, kl, *, scale, config, causal, tanh_ds, with_dbias=False):
    kw = dict(scale=scale, is_causal=causal, config=config, approx_sigmoid=True, interpret=False)
    dk, dv, dbias, dq = kernels.backward_dkv(
        q, k, v, hb, do, ql, kl, with_dbias=with_dbias, tanh_ds=tanh_ds, **kw
    )
    if dq is None:
        dq = kernels.backward_dq(q, k, v, hb, do, ql, kl, tanh_ds=tanh_ds, **kw)
    return (dq, dk, dv) + ((dbias,) if with_dbias else ())


def check(b, t, n, h, lens, causal, fused, tanh_ds):
    config = kernels.default_config(h, "bfloat16", t, jax.devices()[0].device_kind)
    config = dataclasses.replace(config, fused_bwd=fused)
    fn = functools.partial(
        backward, scale=h**-0.5, config=config, causal=causal, tanh_ds=tanh_ds, with_dbias=True
    )
    variant = dict(causal=causal, fused_bwd=fused, tanh_ds=tanh_ds)
    hopper_bwd.check(b, t, n, h, lens, lens, variant, backward=fn, log=LOG)


def timings(deadline: float, rounds: int):
    names = list(FORMS)
    for h in (64, 128):
        for lens in ([8192, 8192], [5300, 2892]):
            t, b, n = 8192, 2, 2048 // h
            q, k, v, do, ql, kl = hopper_bwd.inputs(b, t, n, h, lens, lens)
            hb = (0.5 * -jnp.log(kl.astype(jnp.float32))).astype(jnp.float32)
            config = kernels.default_config(h, "bfloat16", t, jax.devices()[0].device_kind)
            flops = 2.5 * 4 * n * h * sum(x * x for x in lens)
            fns = {
                name: jax.jit(
                    functools.partial(
                        backward, scale=h**-0.5, config=config, causal=False, tanh_ds=tds
                    )
                )
                for name, tds in FORMS.items()
            }
            for r in range(rounds):
                for name in names[r % 2 :] + names[: r % 2]:
                    if time.time() > deadline:
                        return
                    rec = dict(kind="time", variant=name, round=r, h=h, t=t, lens=lens)
                    args = (q, k, v, hb, do, ql, kl)
                    emit(hopper_bwd.time_variant(rec, fns[name], args, flops, "tflops_bwd"))


def table():
    med = hopper_bwd.medians(LOG, lambda r: (r["h"], tuple(r["lens"])))
    hopper_bwd.print_medians(med, lambda k: f"H={k[0]} T=8192 lens={list(k[1])}", ["ds_from_p"])


def main():
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 150)
    emit(dict(kind="meta", jax=jax.__version__, device=str(jax.devices()[0].device_kind)))
    for args in [
        (2, 512, 2, 64, [512, 300], True, False),
        (2, 512, 2, 128, [512, 129], False, True),
    ]:
        for tanh_ds in (False, True):
            try:
                check(*args, tanh_ds)
            except Exception as e:
                emit(dict(kind="check", args=str(args), error=f"{type(e).__name__}: {e}"[:3000]))
                traceback.print_exc()
    timings(deadline, int(os.environ.get("ROUNDS", 3)))
    table()


if __name__ == "__main__":
    main()
