"""The H=64 Hopper backward with one dq share per program split by query rows (issue 14, thirtieth
session): `fused_backward(shared_dq=True, dq_rows=True, block_q=128)` (the table's at H=64 since
404bb1e; also with 3 stages) against one dq share per warpgroup (block_q=64, the table's before),
kernels alone; and both shared_dq splits with the dq
product a step late (`defer_dq`: the warpgroups no longer wait for each other at every step; slower,
removed after run 22: its variants run only on a tree that has it, `ff675d7`).

Why: at H=64 the dq reduce-adds cost ~9% of the backward (run 17's ablation); one share per
program halves them, but the column split of shared_dq needs 64-byte swizzled tiles at H=64,
which alone cost 3% (run 13). Split by query rows (each warpgroup: 64 of 128 queries, all H
columns, all 128 keys) every tile keeps its 128-byte swizzle, and a program makes half as many
steps, each twice the work.

1. Compiled checks of the new variant against float32 XLA gradients (dense, padded, causal with a
   bias gradient, 3 stages, no overlap).
2. Timings, ROUNDS rounds (default 4), the variants' order rotating so that each leads as often:
   H=64, T=4K/8K/16K dense and T=8K with the uneven 50%-padding lengths [5300, 2892].
One JSON line per result in $OUT/dq_rows.jsonl; a table of medians over the rounds last.
    OUT=/tmp/out python docs/probes/dq_rows.py [deadline_s]
"""

import inspect
import os
import sys
import time
import traceback

import jax

sys.path.insert(0, os.path.dirname(__file__))
import hopper_bwd  # noqa: E402 (the probe's inputs, checks and timing)

from pallas_kernels.sigmoid_attention import hopper  # noqa: E402

OUT = os.environ.get("OUT", "/tmp")
LOG = "dq_rows.jsonl"
ROWS = dict(shared_dq=True, dq_rows=True, block_q=128)
# Since run 23 fused_backward takes ds from w = 2 p - 1 by default (tanh_ds); "per_wg" and "rows"
# keep ds from p, as timed in runs 22 and 23.
OLD_DS = (
    {"tanh_ds": False} if "tanh_ds" in inspect.signature(hopper.fused_backward).parameters else {}
)
ROWS.update(OLD_DS)
# "per_wg": a dq share per warpgroup, the table's variant until 404bb1e ("table" in run 22's
# records); "rows": the table's at H=64 since.
VARIANTS = {
    "per_wg": dict(OLD_DS),
    "rows": ROWS,
    "rows_s3": dict(ROWS, stages=3),  # 224.5 KiB of shared memory; 3-6% slower (run 23).
}
if "tanh_ds" in inspect.signature(hopper.fused_backward).parameters:  # thirty-first session
    VARIANTS.update(
        rows_tds=dict(ROWS, tanh_ds=True),  # ds as dp (1 - w^2), w = 2 p - 1.
        rows_s3_tds=dict(ROWS, stages=3, tanh_ds=True),
    )
if "q_scaled" in inspect.signature(hopper.fused_backward).parameters:  # thirty-second session
    # q arrives times scale / 2 and the scores' product starts at the halved bias.
    VARIANTS.update(rows_tds_qs=dict(ROWS, tanh_ds=True, q_scaled=True))
if os.environ.get("VARIANTS"):  # e.g. VARIANTS=rows,rows_tds
    VARIANTS = {name: VARIANTS[name] for name in os.environ["VARIANTS"].split(",")}
if "defer_dq" in inspect.signature(hopper.fused_backward).parameters:  # ff675d7 (run 22)
    VARIANTS.update(
        rows_defer=dict(ROWS, defer_dq=True),
        cols_defer=dict(shared_dq=True, defer_dq=True),  # 64-byte swizzled tiles at H=64.
    )


def emit(rec):
    hopper_bwd.emit(rec, LOG)


# The checks' inputs: (B, T, N, H, query lengths, key lengths).
DENSE = (1, 1024, 4, 64, [1024], [1024])
PADDED = (2, 512, 2, 64, [512, 300], [512, 129])
CAUSAL = (2, 384, 3, 64, [1, 384], [200, 384])
PADDED_KEYS = (2, 512, 2, 64, [512, 300], [400, 512])
H128 = (2, 512, 2, 128, [512, 300], [400, 512])


def checks():
    over = dict(ROWS, overlap=True)
    cases = [
        (DENSE, over),
        (PADDED, over),
        (CAUSAL, dict(ROWS, causal=True, with_dbias=True)),
        (PADDED_KEYS, dict(ROWS, stages=3, causal=True)),
        (DENSE, dict(ROWS, overlap=False, with_dbias=True)),
    ]
    if "rows_defer" in VARIANTS:
        cases += [
            (DENSE, dict(ROWS, defer_dq=True)),
            (PADDED, dict(ROWS, defer_dq=True)),
            (CAUSAL, dict(ROWS, defer_dq=True, causal=True)),
            (PADDED_KEYS, dict(ROWS, defer_dq=True, with_dbias=True)),
            (PADDED, dict(shared_dq=True, defer_dq=True)),
            (H128, dict(shared_dq=True, defer_dq=True, causal=True)),
        ]
    if "rows_tds" in VARIANTS:
        cases += [
            (DENSE, dict(ROWS, tanh_ds=True)),
            (PADDED, dict(ROWS, tanh_ds=True, stages=3)),
            (CAUSAL, dict(ROWS, tanh_ds=True, causal=True, with_dbias=True)),
            (H128, dict(shared_dq=True, tanh_ds=True, causal=True)),
        ]
    if "rows_tds_qs" in VARIANTS:
        qs = dict(ROWS, tanh_ds=True, q_scaled=True)
        cases += [
            (DENSE, qs),
            (PADDED, dict(qs, stages=3)),
            (CAUSAL, dict(qs, causal=True, with_dbias=True)),
            (PADDED_KEYS, dict(qs, overlap=False, with_dbias=True)),
            (H128, dict(shared_dq=True, q_scaled=True, causal=True)),
        ]
    if os.environ.get("CHECKS") == "last":  # Only the newest variant's (e.g. rows_tds_qs's).
        cases = cases[-5:]
    for shape, variant in cases:
        args = (*shape, variant)
        try:
            hopper_bwd.check(*args)  # Writes to hopper_bwd.jsonl.
        except Exception as e:
            emit(dict(kind="check", args=str(args), error=f"{type(e).__name__}: {e}"[:3000]))
            traceback.print_exc()


def timings(deadline: float, rounds: int):
    shapes = [(4096, None), (8192, None), (16384, None), (8192, [5300, 2892])]
    names = list(VARIANTS)
    for t, lens in shapes:
        b, n, h = 16384 // t, 2048 // 64, 64
        lens = lens or [t] * b
        q, k, v, do, ql, kl = hopper_bwd.inputs(b, t, n, h, lens, lens)
        args = (k, v, hopper_bwd.key_bias(t, ql, kl), do, ql, kl)  # After q.
        flops = 2.5 * 4 * n * h * sum(x * x for x in lens)
        fns = {
            name: jax.jit(lambda *a, kw=kw: hopper.fused_backward(*a, scale=0.125, **kw))
            for name, kw in VARIANTS.items()
        }
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                if time.time() > deadline:
                    return
                rec = dict(kind="time", variant=name, round=r, lead=order[0], h=h, t=t, b=b)
                rec["lens"] = lens
                q_in = hopper_bwd.scaled_q(q, VARIANTS[name], 0.125)  # Outside the timed call.
                emit(hopper_bwd.time_variant(rec, fns[name], (q_in, *args), flops, "tflops_bwd"))


def table():
    med = hopper_bwd.medians(LOG, lambda r: (r["t"], tuple(r["lens"])))
    base = ("per_wg", "table", "rows", "rows_tds")
    hopper_bwd.print_medians(med, lambda k: f"H=64 T={k[0]} lens={list(k[1])[:2]}", base)


def main():
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 240)
    emit(dict(kind="meta", jax=jax.__version__, device=str(jax.devices()[0].device_kind)))
    if os.environ.get("CHECKS") != "0":
        checks()
    timings(deadline, int(os.environ.get("ROUNDS", 4)))
    table()


if __name__ == "__main__":
    main()
