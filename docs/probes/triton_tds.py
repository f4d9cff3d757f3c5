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

import collections
import dataclasses
import functools
import json
import os
import statistics
import sys
import time
import traceback

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hopper_bwd import OUT, inputs, time_variant  # noqa: E402
from hopper_bwd import emit as _emit  # noqa: E402

from pallas_kernels import sigmoid_attention as kernels  # noqa: E402
from sigjax.attention._reference import sigmoid_attention_xla  # noqa: E402

LOG = "triton_tds.jsonl"
emit = functools.partial(_emit, log=LOG)
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
    q, k, v, do, ql, kl = inputs(b, t, n, h, lens, lens)
    scale = h**-0.5
    sb = -jnp.log(kl.astype(jnp.float32))
    f32 = lambda x: x.astype(jnp.float32)  # noqa: E731
    ref_fn = lambda q, k, v, bias: sigmoid_attention_xla(  # noqa: E731
        q, k, v, bias, sb, ql, kl, scale=scale, is_causal=causal
    )
    _, vjp = jax.vjp(ref_fn, f32(q), f32(k), f32(v), jnp.zeros((b, t), jnp.float32))
    ref = vjp(f32(do))
    config = kernels.default_config(h, "bfloat16", t, jax.devices()[0].device_kind)
    config = dataclasses.replace(config, fused_bwd=fused)
    hb = jnp.broadcast_to(0.5 * sb[:, None], (b, t))  # Per key: the bias gradient is defined.
    fn = functools.partial(
        backward, scale=scale, config=config, causal=causal, tanh_ds=tanh_ds, with_dbias=True
    )
    got = jax.jit(fn)(q, k, v, hb, do, ql, kl)
    rows = (jnp.arange(t)[None, :] < ql[:, None])[:, :, None, None]
    got = (jnp.where(rows, got[0], 0), *got[1:3], jnp.sum(got[3], axis=1))
    errs = {
        name: float(jnp.max(jnp.abs(f32(g) - r)) / (jnp.max(jnp.abs(r)) + 1e-30))
        for name, g, r in zip(("dq", "dk", "dv", "dbias"), got, ref, strict=True)
    }
    rec = dict(kind="check", t=t, h=h, lens=lens, causal=causal, fused=fused, tanh_ds=tanh_ds)
    emit(dict(rec, rel_err=errs, ok=max(errs.values()) < 3e-2))


def timings(deadline: float, rounds: int):
    names = list(FORMS)
    for h in (64, 128):
        for lens in ([8192, 8192], [5300, 2892]):
            t, b, n = 8192, 2, 2048 // h
            q, k, v, do, ql, kl = inputs(b, t, n, h, lens, lens)
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
                    emit(time_variant(rec, fns[name], args, flops, "tflops_bwd"))


def table():
    times = collections.defaultdict(list)
    with open(os.path.join(OUT, LOG)) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "time" and "time_s" in r:
                times[(r["h"], tuple(r["lens"]))].append((r["variant"], r["time_s"]))
            elif r.get("kind") == "check":
                print("check", {k: r.get(k) for k in ("h", "causal", "fused", "tanh_ds", "ok")})
    for (h, lens), rows in times.items():
        med = {name: statistics.median(s for v, s in rows if v == name) for name in FORMS}
        print(
            f"H={h} lens={list(lens)}: ds from p {med['ds_from_p'] * 1e3:.3f} ms, tanh_ds "
            f"{med['tanh_ds'] * 1e3:.3f} ms ({med['tanh_ds'] / med['ds_from_p']:.3f})"
        )


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
