"""Ratios by which implementation led a timing round, from `eval kernels` and `eval train-speed`
records (CPU is enough): does the order bias of docs/benchmarks.md run 20 move our ratios?

`eval kernels --rounds=R` pools each implementation's samples in round order, `reps / R` per round,
the implementations in `--impls` order in even rounds (0, 2, ...) and reversed in odd ones.
`eval train-speed` alternates one sample of each attention per round, sigmoid first in even rounds.
For each pair this prints the ratio (geometric mean over rounds of each round's median) in the
rounds the first implementation (sigjax) or the sigmoid step led, in those the other led, and the
pooled ratio as recorded.

  python docs/probes/order_split.py RUN/kernels/kernels.json RUN/speed/*/train_speed.json
"""

import json
import sys

import numpy as np


def _rounds(samples, rounds):
    per = len(samples) // rounds
    return [np.median(samples[i * per : (i + 1) * per]) for i in range(rounds)]


def kernels(path):
    results = [r for r in json.load(open(path))["results"] if r.get("kind") == "time"]
    first, second = (json.load(open(path))["args"].get("impls") or ["pallas", "cudnn"])[:2]
    by_shape = {}
    for r in results:
        if r.get("status") != "ok" or "samples_s" not in r:
            continue
        key = (r["head_dim"], r["seq_len"], r["padding"], r["causal"], r["mode"])
        by_shape.setdefault(key, {})[r["impl"]] = r
    print(path)
    print(f"H   T      pad  causal mode  {first}-led {second}-led pooled ({second} / {first} time)")
    for key, recs in sorted(by_shape.items()):
        if not {first, second} <= recs.keys():
            continue
        p, c = recs[first], recs[second]
        n = min(p["rounds"], c["rounds"])
        pr, cr = _rounds(p["samples_s"], p["rounds"])[:n], _rounds(c["samples_s"], c["rounds"])[:n]
        led = [r % 2 == 0 for r in range(n)]  # Did the first implementation lead round r?
        a = [c_ / p_ for c_, p_, lead in zip(cr, pr, led, strict=True) if lead]
        b = [c_ / p_ for c_, p_, lead in zip(cr, pr, led, strict=True) if not lead]
        pooled = c["time_s"] / p["time_s"]
        fmt = lambda x: f"{np.exp(np.mean(np.log(x))):.3f}" if x else "  -  "  # noqa: E731
        row = f"{key[0]:<4}{key[1]:<7}{key[2]:<5}{key[3]!s:<7}{key[4]:<8}"
        print(f"{row}{fmt(a):>10} {fmt(b):>10}  {pooled:.3f}")


def speed(path):
    d = json.load(open(path))
    sig, soft = (r["step_times_s"] for r in d["runs"])
    lead = [s / f for r, (s, f) in enumerate(zip(sig, soft, strict=True)) if r % 2 == 0]
    other = [s / f for r, (s, f) in enumerate(zip(sig, soft, strict=True)) if r % 2 == 1]
    print(
        f"{path}: sigmoid / softmax, sigmoid led {np.round(lead, 3).tolist()}, softmax led "
        f"{np.round(other, 3).tolist()}, recorded {d['sigmoid_over_softmax']:.3f}"
    )


if __name__ == "__main__":
    for f in sys.argv[1:]:
        (speed if f.endswith("train_speed.json") else kernels)(f)
