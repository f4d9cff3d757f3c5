"""The Hopper forward with part of its sigmoids on the FMA units (`fused_forward(fma_cols=...)`),
kernels alone, side by side (issue 14: "for H=64, where the special-function unit is the limit:
evaluate part of the sigmoids with an FMA polynomial").

Per shape (H:T, 16,384 tokens, hidden 2048) and padding (0 and `eval kernels`' 50% lengths):
every variant's forward output against float32 XLA's (two heads) and, once per H, its
backward's gradients at a small padded causal shape with a bias gradient (hopper_bwd.check);
then ROUNDS rounds of timings of the forward and the backward alone (the table's knobs:
shared_dq, and dq_rows at H=64), the variants' order rotated every round (the first-timed
variant ran faster on an H100, docs/benchmarks.md run 20). One JSON line per record in
$OUT/fma_sigmoid.jsonl, a table of the median times last (ratio to fma_cols=0).
    OUT=/tmp/out [VARIANTS=base,fma16,fma32,lean] [ROUNDS=3] \
      python docs/probes/fma_sigmoid.py [H:T,...] [budget_s]
"""

import collections
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hopper_bwd as hb  # noqa: E402 (the probe beside this one)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from eval.kernels.specs import sequence_lengths  # noqa: E402
from pallas_kernels.sigmoid_attention import hopper  # noqa: E402
from sigjax.attention._reference import sigmoid_attention_xla  # noqa: E402

LOG = "fma_sigmoid.jsonl"
ROUNDS = int(os.environ.get("ROUNDS", "3"))
# Variants: "base" (the table's kernels), "fmaN" (fma_cols=N in both kernels), "lean" (the
# backward's lean_exit), "fmaN_lean" (both).
VARIANTS = os.environ.get("VARIANTS", "base,fma16,fma32").split(",")


def _knobs(name):
    """(forward kwargs, backward kwargs besides the table's) of a variant name."""
    fwd, bwd = {}, {}
    for part in name.split("_"):
        if part.startswith("fma"):
            fwd["fma_cols"] = bwd["fma_cols"] = int(part[3:])
        elif part == "lean":
            bwd["lean_exit"] = True
        elif part != "base":
            raise ValueError(f"variant {name!r}: unknown part {part!r}")
    return fwd, bwd


def _table_knobs(h):
    return dict(shared_dq=True, dq_rows=True) if h == 64 else dict(shared_dq=True)


def main():
    shapes = sys.argv[1] if len(sys.argv) > 1 else "64:4096,64:8192,128:8192"
    deadline = time.time() + (float(sys.argv[2]) if len(sys.argv) > 2 else 1e9)
    checked = set()
    for shape in shapes.split(","):
        h, t = map(int, shape.split(":"))
        b, n = 16384 // t, 2048 // h
        for c in VARIANTS if h not in checked else ():
            kw = dict(_table_knobs(h), **_knobs(c)[1], causal=True, with_dbias=True)
            try:
                hb.check(2, 1024, 2, h, [1024, 600], [1024, 200], kw, log=LOG)
            except Exception as e:  # noqa: BLE001 (recorded)
                hb.emit(
                    dict(kind="check", variant=kw, error=f"{type(e).__name__}: {e}"[:2000]), LOG
                )
        checked.add(h)
        scale = h**-0.5
        fns, bwds = {}, {}
        for c in VARIANTS:
            fwd_kw, bwd_kw = _knobs(c)
            bwd_kw.update(_table_knobs(h))
            fns[c] = jax.jit(lambda *a, s=scale, kw=fwd_kw: hopper.fused_forward(*a, scale=s, **kw))
            bwds[c] = jax.jit(
                lambda *a, s=scale, kw=bwd_kw: hopper.fused_backward(*a, scale=s, **kw)
            )
        for padding in (0.0, 0.5):
            if time.time() > deadline:
                hb.emit(dict(kind="skipped", h=h, t=t, padding=padding), LOG)
                continue
            lens = [int(x) for x in sequence_lengths(b, t, padding)]
            q, k, v, do, ql, kl = hb.inputs(b, t, n, h, lens, lens)
            sb = -jnp.log(kl.astype(jnp.float32))
            args = (q, k, v, 0.5 * sb, ql, kl)
            bwd_args = (q, k, v, hb.key_bias(t, ql, kl), do, ql, kl)
            up = [x[:, :, :2].astype(jnp.float32) for x in (q, k, v)]  # Two heads checked.
            ref = sigmoid_attention_xla(*up, None, sb, ql, kl, scale=scale, is_causal=False)
            rows = (jnp.arange(t)[None, :] < ql[:, None])[:, :, None, None]
            ref = jnp.where(rows, ref, 0)
            order = []
            for c in VARIANTS:
                rec = dict(kind="check", variant=c, h=h, t=t, padding=padding)
                try:
                    got = fns[c](*args)[:, :, :2].astype(jnp.float32)
                    err = jnp.max(jnp.abs(got - ref)) / jnp.max(jnp.abs(ref))
                    rec.update(rel_err=float(err), ok=bool(err < 1e-2))
                    order.append(c)
                except Exception as e:  # noqa: BLE001 (recorded, the variant is dropped)
                    rec["error"] = f"{type(e).__name__}: {e}"[:2000]
                hb.emit(rec, LOG)
            flops = 4 * n * h * sum(x * x for x in lens)
            for r in range(ROUNDS):
                for c in order[r % len(order) :] + order[: r % len(order)]:
                    for kind, fn, a, fl in (
                        ("fwd", fns[c], args, flops),
                        ("bwd", bwds[c], bwd_args, 2.5 * flops),
                    ):
                        rec = dict(kind="time", op=kind, variant=c, round=r, h=h, t=t)
                        rec.update(padding=padding, lens=lens, at=time.strftime("%H:%M:%S"))
                        hb.emit(hb.time_variant(rec, fn, a, fl, "tflops"), LOG)
    table()


def table():
    times = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in open(os.path.join(hb.OUT, LOG)):
        r = hb.json.loads(line)
        if r.get("kind") == "time" and "time_s" in r:
            times[(r["op"], r["h"], r["t"], r["padding"])][r["variant"]].append(r["time_s"])
        elif r.get("kind") == "check" or "error" in r:
            print(r)
    print("| kernel | H | T | padding | " + " | ".join(f"{c}: ms (x)" for c in VARIANTS))
    for (op, h, t, padding), d in sorted(times.items()):
        base = statistics.median(d[VARIANTS[0]]) if d.get(VARIANTS[0]) else None
        cells = []
        for c in VARIANTS:
            if not d.get(c):
                cells.append("-")
                continue
            m = statistics.median(d[c])
            cells.append(f"{1e3 * m:.3f}" + (f" ({m / base:.3f})" if base else ""))
        print(f"| {op} | {h} | {t} | {padding} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
