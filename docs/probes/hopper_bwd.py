"""Hopper (Mosaic GPU) fused backward vs the Triton split backward, backward alone (issue 14).

Compiled correctness against the float32 XLA gradients first (several shapes, padding), then the
backward alone at the issue's shapes (16,384 tokens, hidden 2048): the fused kernel at a few
pipeline depths and with one dq share per program (shared_dq; at H=64 with 64-byte swizzled
tiles, `swizzle`), the split Triton pair
(dK/dV + dQ kernels, table configuration). One JSON line per result in $OUT/hopper_bwd.jsonl;
a table last. Run on the GPU from the repository root:
    OUT=/tmp/out python docs/probes/hopper_bwd.py
"""

import collections
import json
import os
import statistics
import sys
import time
import traceback

import jax
import jax.numpy as jnp

from eval.kernels.timing import time_callable
from pallas_kernels import sigmoid_attention as kernels
from pallas_kernels.sigmoid_attention import hopper
from sigjax.attention._reference import sigmoid_attention_xla

OUT = os.environ.get("OUT", "/tmp")


def emit(rec, log="hopper_bwd.jsonl"):
    print(json.dumps(rec), flush=True)
    with open(os.path.join(OUT, log), "a") as f:
        f.write(json.dumps(rec) + "\n")


def inputs(b, t, n, h, q_lens, kv_lens, seed=0):
    ks = jax.random.split(jax.random.key(seed), 4)
    shape = (b, t, n, h)
    q, k, v, do = (jax.random.normal(kk, shape, jnp.float32).astype(jnp.bfloat16) for kk in ks)
    q_lens = jnp.asarray(q_lens, jnp.int32)
    kv_lens = jnp.asarray(kv_lens, jnp.int32)
    rows = jnp.arange(t)[None, :] < q_lens[:, None]
    do = jnp.where(rows[:, :, None, None], do, 0).astype(jnp.bfloat16)
    return q, k, v, do, q_lens, kv_lens


def key_bias(t, q_lens, kv_lens):
    sb = -jnp.log(kv_lens.astype(jnp.float32))
    keys = jnp.arange(t)[None, :] < kv_lens[:, None]
    return jnp.where(keys, 0.5 * sb[:, None], hopper.PADDED_KEY_BIAS).astype(jnp.float32)


def check(b, t, n, h, q_lens, kv_lens, variant, backward=None, log="hopper_bwd.jsonl"):
    """fused_backward(**variant)'s gradients (or backward(q, k, v, key bias, do, q lens, kv lens)'s,
    dq, dk, dv and a bias gradient if any) against float32 XLA's; one record in `log`."""
    q, k, v, do, ql, kl = inputs(b, t, n, h, q_lens, kv_lens)
    scale = h**-0.5
    causal = variant.get("causal", False)
    sb = -jnp.log(kl.astype(jnp.float32))
    f32 = lambda x: x.astype(jnp.float32)  # noqa: E731
    ref_fn = lambda q, k, v, bias: sigmoid_attention_xla(  # noqa: E731
        q, k, v, bias, sb, ql, kl, scale=scale, is_causal=causal
    )
    _, vjp = jax.vjp(ref_fn, f32(q), f32(k), f32(v), jnp.zeros((b, t), jnp.float32))
    ref = vjp(f32(do))
    if backward is None:
        fn = jax.jit(lambda *a: hopper.fused_backward(*a, scale=scale, **variant))
        q = scaled_q(q, variant, scale)
    else:
        fn = jax.jit(backward)
    got = fn(q, k, v, key_bias(t, ql, kl), do, ql, kl)
    rows = (jnp.arange(t)[None, :] < ql[:, None])[:, :, None, None]
    dbias = (jnp.sum(got[3], axis=1),) if len(got) > 3 else ()  # Summed over heads.
    got = (jnp.where(rows, got[0], 0), *got[1:3], *dbias)
    errs = {}
    for name, g, r in zip(("dq", "dk", "dv", "dbias"), got, ref, strict=False):
        errs[name] = float(jnp.max(jnp.abs(f32(g) - r)) / (jnp.max(jnp.abs(r)) + 1e-30))
    emit(
        dict(
            kind="check",
            b=b,
            t=t,
            n=n,
            h=h,
            q_lens=list(q_lens),
            kv_lens=list(kv_lens),
            variant=variant,
            rel_err=errs,
            ok=max(errs.values()) < 2e-2,
        ),
        log,
    )


def scaled_q(q, variant, scale):
    """q as a variant with q_scaled (thirty-second session) takes it: times scale / 2 (exact
    where that is a power of two, as at H=64)."""
    return q * jnp.asarray(0.5 * scale, q.dtype) if variant.get("q_scaled") else q


def split_backward(q, k, v, hb, do, ql, kl, *, scale, config):
    kw = dict(scale=scale, is_causal=False, config=config, approx_sigmoid=True, interpret=False)
    dk, dv, _, _ = kernels.backward_dkv(q, k, v, hb, do, ql, kl, with_dbias=False, **kw)
    dq = kernels.backward_dq(q, k, v, hb, do, ql, kl, **kw)
    return dq, dk, dv


def timing(h, t, padding, variants_kw, lens=None, split=True):
    """lens: the sequences' lengths (default: all of t * (1 - padding)); split: also time the
    split Triton pair."""
    b, n = 16384 // t, 2048 // h
    lens = lens or [int(t * (1 - padding))] * b
    q, k, v, do, ql, kl = inputs(b, t, n, h, lens, lens)
    scale = h**-0.5
    valid = sum(lens)
    flops_bwd = 2.5 * 4 * n * h * sum(x * x for x in lens)  # bwd = 2.5x fwd (fwd+bwd = 3.5x)
    config = kernels.default_config(h, "bfloat16", t, jax.devices()[0].device_kind)
    half = (0.5 * -jnp.log(kl.astype(jnp.float32))).astype(jnp.float32)
    variants = []
    if split:
        fn = jax.jit(lambda *a: split_backward(*a, scale=scale, config=config))
        variants.append(("split", fn, (q, k, v, half, do, ql, kl)))
    hb = key_bias(t, ql, kl)
    for kw in variants_kw:
        fn = jax.jit(lambda *a, kw=kw: hopper.fused_backward(*a, scale=scale, **kw))
        name = "hopper_" + "_".join(f"{a}{int(b)}" for a, b in sorted(kw.items()))
        variants.append((name, fn, (q, k, v, hb, do, ql, kl)))
    for name, fn, args in variants:
        rec = dict(kind="time", variant=name, h=h, t=t, b=b, n=n, padding=padding, valid=valid)
        rec["lens"] = lens
        emit(time_variant(rec, fn, args, flops_bwd, "tflops_bwd"))


def time_variant(rec, fn, args, flops, key):
    """rec with fn(*args)'s compile time, time_callable's timing and flops / time as `key`
    (or the error)."""
    try:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        rec["compile_s"] = time.perf_counter() - t0
        rec.update(time_callable(fn, args, reps=10, warmup=2, min_sample_s=0.05))
        rec[key] = flops / rec["time_s"] / 1e12
    except Exception as e:
        rec["error"] = f"{type(e).__name__}: {e}"[:2000]
        traceback.print_exc()
    return rec


def medians(log: str, key) -> dict:
    """{key(record): {variant: median time_s}} over the timing records of $OUT/`log`, variants
    in the order first timed; prints the checks and errors on the way."""
    times = collections.defaultdict(lambda: collections.defaultdict(list))
    with open(os.path.join(OUT, log)) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "time" and "time_s" in r:
                times[key(r)][r["variant"]].append(r["time_s"])
            elif r.get("kind") == "check" or "error" in r:
                fields = ("variant", "h", "t", "tanh_ds", "rel_err", "ok", "error")
                print(r.get("kind"), {f: str(r[f])[:300] for f in fields if f in r})
    return {k: {v: statistics.median(x) for v, x in d.items()} for k, d in times.items()}


def print_medians(medians_: dict, label, base_names) -> None:
    """One line per key: label(key), each variant's median in ms and its ratio to the first of
    base_names that was timed."""
    for key, med in medians_.items():
        base = next((med[n] for n in base_names if n in med), None)
        cells = [
            f"{name} {s * 1e3:.3f} ms" + (f" ({s / base:.3f})" if base else "")
            for name, s in med.items()
        ]
        print(f"{label(key)}: " + ", ".join(cells))


def compare(knob: str, log="hopper_bwd.jsonl", prefix="hopper"):
    """Prints the checks in $OUT/`log`, then, per (H, T, padding), the best time of the table's
    variant against that of the variant whose name holds `knob`, and their ratio (among the
    variants whose names start with `prefix`: "mosaic" for hopper_fwd.py's log)."""
    times = collections.defaultdict(list)
    with open(os.path.join(OUT, log)) as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "check":
                err = r["rel_err"]  # hopper_fwd.py's: one number; ours: one per gradient.
                errs = {k: round(v, 5) for k, v in err.items()} if isinstance(err, dict) else err
                print("check", r["h"], r["variant"], errs, r["ok"])
            elif "error" in r:
                print("ERR", r["variant"], r["h"], r["t"], r["error"][:400])
            elif r["kind"] == "time" and r["variant"].startswith(prefix):
                key = (r["h"], r["t"], r["padding"], knob in r["variant"])
                times[key].append(r["time_s"] * 1e3)
    for key, base in sorted(times.items()):
        other = times.get(key[:3] + (True,))
        if not key[3] and other:
            ratio = min(other) / min(base)
            print(key[:3], f"table {min(base):.3f} {knob} {min(other):.3f} ms ratio {ratio:.3f}")


def main():
    emit(
        dict(
            kind="meta",
            jax=jax.__version__,
            device=str(jax.devices()[0].device_kind),
            date=time.strftime("%Y-%m-%d %H:%M:%S"),
        )
    )
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 240)
    over = dict(stages=2, overlap=True)
    wide, wide_over = dict(block_q=128), dict(over, block_q=128)  # H=64 only.
    for args in [
        (2, 512, 2, 128, [512, 300], [512, 129], over),
        (2, 384, 3, 64, [1, 384], [200, 384], wide_over),
        (1, 1024, 16, 64, [1024], [1024], wide),
        # Causal, bias gradient (first compiled in run 11).
        (2, 512, 2, 128, [512, 300], [512, 129], dict(over, causal=True)),
        (2, 384, 3, 64, [1, 384], [200, 384], dict(wide_over, causal=True, with_dbias=True)),
        (2, 512, 2, 64, [512, 300], [400, 512], dict(over, with_dbias=True)),
        # One dq share per program (H=128; first compiled in run 11).
        (2, 512, 2, 128, [512, 300], [512, 129], dict(over, shared_dq=True)),
        (2, 512, 2, 128, [512, 300], [400, 512], dict(shared_dq=True, stages=3, causal=True)),
        (1, 1024, 4, 128, [1024], [1024], dict(over, shared_dq=True, with_dbias=True)),
        # shared_dq at H=64 (64-byte swizzled tiles; first compiled in run 12).
        (2, 512, 2, 64, [512, 300], [512, 129], dict(over, shared_dq=True)),
        (2, 512, 2, 64, [512, 300], [400, 512], dict(shared_dq=True, stages=3, causal=True)),
        (1, 1024, 4, 64, [1024], [1024], dict(over, shared_dq=True, with_dbias=True)),
        (2, 512, 2, 64, [512, 300], [512, 129], dict(over, swizzle=64)),
    ]:
        if os.environ.get("CHECKS") == "0":
            break
        try:
            check(*args)
        except Exception as e:
            emit(dict(kind="check", args=str(args), error=f"{type(e).__name__}: {e}"[:3000]))
            traceback.print_exc()
    shared, shared3 = dict(over, shared_dq=True), dict(over, shared_dq=True, stages=3)
    sw64 = dict(over, swizzle=64)
    uneven = [5300, 2892]  # `python -m eval kernels`' lengths at T=8192, 50% padding.
    for h, t, pad, variants, lens, split in [
        (64, 8192, 0.0, (over, shared, sw64), None, True),
        (64, 8192, 0.5, (over, shared), uneven, False),
        (128, 8192, 0.5, (shared,), uneven, False),
        (64, 16384, 0.0, (over, shared), None, False),
        (64, 8192, 0.0, (shared3,), None, False),
        (128, 8192, 0.0, (over, shared), None, False),
    ]:
        if time.time() > deadline:
            break
        timing(h, t, pad, variants, lens, split)


if __name__ == "__main__":
    main()
