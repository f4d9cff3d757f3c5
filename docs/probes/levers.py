"""Kernel levers, measured in one harness (probe script, not project code).

Writes $OUT/levers.jsonl, one record per measurement. bf16, 16,384 tokens per batch, hidden 2048.
"""

import functools
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tl_sigmoid beside it
import sigjax
from eval.kernels.timing import time_callable
from pallas_kernels.sigmoid_attention import KernelConfig, default_config, forward

OUT = os.environ.get("OUT", "/tmp")
BUDGET = float(os.environ.get("LEVERS_BUDGET", "300"))
T0 = time.time()
LOG = open(f"{OUT}/levers.jsonl", "a")


def rec(**kw):
    kw["t"] = round(time.time() - T0, 1)
    print(json.dumps(kw), flush=True)
    LOG.write(json.dumps(kw) + "\n")
    LOG.flush()


def timed(fn, args):
    c = jax.jit(fn).lower(*args).compile()
    return time_callable(c, args, reps=10, warmup=2, min_sample_s=5e-3)["time_s"], c


def inputs(H, T, seed=1):
    N, B = 2048 // H, 16384 // T
    ks = jax.random.split(jax.random.key(seed), 4)
    return [jax.random.normal(k, (B, T, N, H), jnp.float32).astype(jnp.bfloat16) for k in ks]


def flops(H, T, mode):
    N, B = 2048 // H, 16384 // T
    f = 4 * N * H * B * T * T
    return f * (3.5 if mode == "fwdbwd" else 1.0)


def run(name, H, T, mode, fn, args, check=None, **extra):
    if time.time() - T0 > BUDGET:
        return rec(name=name, H=H, T=T, mode=mode, status="skipped", **extra)
    try:
        t, c = timed(fn, args)
        r = dict(
            name=name,
            H=H,
            T=T,
            mode=mode,
            time_ms=t * 1e3,
            tflops=flops(H, T, mode) / t / 1e12,
            **extra,
        )
        if check is not None:
            r["rel_err"] = check(c(*args))
        rec(**r)
    except Exception as e:
        rec(
            name=name,
            H=H,
            T=T,
            mode=mode,
            status="error",
            error=f"{type(e).__name__}: {e}"[:400],
            **extra,
        )


def rel(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def fwdbwd(attn):
    def f(q, k, v, do):
        out, vjp = jax.vjp(attn, q, k, v)
        return (out, *vjp(do))

    return f


def sig(bs=None, bias=False):
    def attn(q, k, v):
        b = jnp.zeros((q.shape[0], k.shape[1]), jnp.float32) if bias else None
        return sigjax.sigmoid_attention(q, k, v, b, implementation="pallas", kernel_config=bs)

    return attn


def cudnn(q, k, v):
    return sigjax.softmax_attention(q, k, v, implementation="cudnn")


# ---- Triton-language forward through jax-triton
try:
    import jax_triton as jt
    from tl_sigmoid import sigmoid_fwd_kernel
except Exception as e:  # noqa
    jt = None
    rec(name="import_jax_triton", status="error", error=repr(e)[:300])


def tl_fwd(bm, bn, w, st, ws=False, heads_major=False):
    def f(q, k, v):
        B, T, N, H = q.shape
        lens = jnp.full((B,), T, jnp.int32)
        hb = jnp.full((B,), -0.5 * math.log(T), jnp.float32)
        return jt.triton_call(
            q,
            k,
            v,
            hb,
            lens,
            lens,
            T,
            T,
            N,
            0.5 / math.sqrt(H),
            kernel=sigmoid_fwd_kernel,
            out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
            grid=(T // bm, B * N),
            num_warps=w,
            num_stages=st,
            H=H,
            BLOCK_M=bm,
            BLOCK_N=bn,
            CAUSAL=False,
            APPROX=True,
            WS=ws,
            STAGES=st,
        )

    return f


def bnth_fwd(bs):
    # Head-major layout: [B, T, N, H] viewed as [B*N, T, 1, H] after a transpose (kernel only).
    def f(qt, kt, vt):
        BN, T, _, H = qt.shape
        lens = jnp.full((BN,), T, jnp.int32)
        hb = jnp.full((BN,), -0.5 * math.log(T), jnp.float32)
        return forward(
            qt,
            kt,
            vt,
            hb,
            lens,
            lens,
            scale=1 / math.sqrt(H),
            is_causal=False,
            config=bs,
            approx_sigmoid=True,
            interpret=False,
        )

    return f


def heads_major(x):
    B, T, N, H = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B * N, T, 1, H)


PLAN = os.environ.get("LEVERS_PLAN", "main")
for H, T in [(128, 8192), (64, 8192), (128, 4096), (64, 4096)]:
    q, k, v, do = inputs(H, T)
    ref = (
        jax.jit(lambda q, k, v: sigjax.sigmoid_attention(q, k, v, implementation="xla"))(
            q.astype(jnp.float32), k.astype(jnp.float32), v.astype(jnp.float32)
        )
        if T <= 4096
        else None
    )
    chk = functools.partial(lambda o, r: rel(o, r), r=ref) if ref is not None else None
    d = default_config(H, "bfloat16")
    # Forward.
    run("cudnn", H, T, "fwd", cudnn, (q, k, v))
    run("pallas_default", H, T, "fwd", sig(), (q, k, v), chk)
    qt, kt, vt = map(heads_major, (q, k, v))
    run("pallas_bnth_kernel_only", H, T, "fwd", bnth_fwd(d), (qt, kt, vt))
    run(
        "pallas_bnth_with_transposes",
        H,
        T,
        "fwd",
        lambda q, k, v, d=d: bnth_fwd(d)(heads_major(q), heads_major(k), heads_major(v)),
        (q, k, v),
    )
    if jt is not None:
        for cfg in [
            (128, 64, 8, 3),
            (128, 64, 4, 3),
            (128, 128, 8, 2),
            (64, 64, 4, 3),
            (128, 32, 4, 4),
        ]:
            run("triton_lang", H, T, "fwd", tl_fwd(*cfg), (q, k, v), chk, cfg=cfg)
        run(
            "triton_lang_ws",
            H,
            T,
            "fwd",
            tl_fwd(128, 64, 8, 3, ws=True),
            (q, k, v),
            chk,
            cfg=(128, 64, 8, 3),
        )
    if T == 8192:
        for cfg in [
            (128, 64, 8, 3),
            (128, 128, 8, 2),
            (128, 64, 4, 3),
            (64, 64, 4, 4),
            (128, 32, 4, 4),
            (256, 64, 8, 2),
        ]:
            bs = KernelConfig(block_q=cfg[0], block_k=cfg[1], num_warps=cfg[2], num_stages=cfg[3])
            run("pallas_tile", H, T, "fwd", sig(bs), (q, k, v), cfg=cfg)
            run("pallas_tile_bnth", H, T, "fwd", bnth_fwd(bs), (qt, kt, vt), cfg=cfg)
    # Forward + backward.
    run("cudnn", H, T, "fwdbwd", fwdbwd(cudnn), (q, k, v, do))
    run("pallas_default", H, T, "fwdbwd", fwdbwd(sig()), (q, k, v, do))
    run("pallas_default_perkey_bias", H, T, "fwdbwd", fwdbwd(sig(bias=True)), (q, k, v, do))
    bwd_cfgs = [
        ("split", 64, 64, 4, 2),
        ("fused", 64, 64, 4, 2),
        ("fused", 64, 128, 8, 2),
        ("fused", 32, 128, 4, 2),
        ("fused", 64, 128, 4, 2),
        ("fused", 128, 128, 8, 1),
        ("split", 64, 128, 8, 2),
        ("split", 128, 64, 8, 2),
    ]
    for kind, bq, bk, w, st in bwd_cfgs if T == 8192 else bwd_cfgs[:3]:
        bs = KernelConfig(
            block_q=d.block_q,
            block_k=d.block_k,
            num_warps=d.num_warps,
            num_stages=d.num_stages,
            block_q_dkv=bq,
            block_k_dkv=bk,
            block_q_dq=bk if kind == "split" else 64,
            block_k_dq=bq if kind == "split" else 64,
            num_warps_bwd=w,
            num_stages_bwd=st,
            fused_bwd=kind == "fused",
        )
        run(
            f"pallas_bwd_{kind}",
            H,
            T,
            "fwdbwd",
            fwdbwd(sig(bs)),
            (q, k, v, do),
            cfg=(bq, bk, w, st),
        )
rec(name="done")
