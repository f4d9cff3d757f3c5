"""The H=64 Hopper backward with its steps software-pipelined (`fused_backward(pipeline=True)`)
against the table's variant (overlap, 2 stages), backward alone (issue 14, twenty-fourth session).

Compiled checks against the float32 XLA gradients first (dense, padded, causal with a bias
gradient, 3 stages), then timings at the issue's shapes (16,384 tokens, hidden 2048): T=8192 dense
with 2 and 3 stages, T=8192 with `eval kernels`' uneven 50%-padding lengths, T=4096 and 16384
dense. Rows go to $OUT/hopper_bwd.jsonl (hopper_bwd.py's format); last, $OUT/decision.txt says
whether pipeline is >= 3% faster at T=8192 dense and no slower padded (ADOPT) or not (KEEP).
    OUT=/tmp/out python docs/probes/pipeline_bwd.py [deadline_s]

Needs the tree of commit ad2b19c: the `pipeline` knob was removed after this probe measured it
18-22% slower (docs/benchmarks.md run 16; ptxas serialises the kernel's wgmma instructions).
"""

import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hopper_bwd as hb  # noqa: E402 (the probe beside this one)

OUT = hb.OUT


def rows():
    with open(os.path.join(OUT, "hopper_bwd.jsonl")) as f:
        return [json.loads(line) for line in f]


def main():
    hb.emit(dict(kind="meta", probe="pipeline_bwd", date=time.strftime("%Y-%m-%d %H:%M:%S")))
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 200)
    over = dict(stages=2, overlap=True)
    pipe, pipe3, over3 = (
        dict(over, pipeline=True),
        dict(over, pipeline=True, stages=3),
        dict(over, stages=3),
    )
    for args in [
        (2, 512, 2, 64, [512, 300], [512, 129], pipe),
        (2, 384, 3, 64, [1, 384], [200, 384], dict(pipe, causal=True, with_dbias=True)),
        (1, 1024, 16, 64, [1024], [1024], pipe3),
        (2, 512, 2, 64, [512, 300], [400, 512], dict(pipe3, causal=True)),
    ]:
        try:
            hb.check(*args)
        except Exception as e:
            hb.emit(dict(kind="check", args=str(args), error=f"{type(e).__name__}: {e}"[:3000]))
            traceback.print_exc()
    uneven = [5300, 2892]
    for h, t, pad, variants, lens in [
        (64, 8192, 0.0, (over, pipe, over3, pipe3), None),
        (64, 8192, 0.5, (over, pipe), uneven),
        (64, 16384, 0.0, (over, pipe), None),
        (64, 4096, 0.0, (over, pipe), None),
    ]:
        if time.time() > deadline:
            break
        hb.timing(h, t, pad, variants, lens, split=False)
    decide()


def decide():
    """ADOPT if pipeline (2 stages) is >= 3% faster than the table's variant at T=8192 dense and
    not slower with uneven padding; the checks must all have passed."""
    got = rows()
    checks = [r for r in got if r["kind"] == "check" and r.get("variant", {}).get("pipeline")]
    ok = len(checks) == 4 and all(r.get("ok") for r in checks)
    times = {}
    for r in got:
        if r["kind"] == "time" and "time_s" in r:
            times[(r["variant"], r["t"], r["padding"])] = r["time_s"]
    base, new = "hopper_overlap1_stages2", "hopper_overlap1_pipeline1_stages2"
    dense = [times.get((v, 8192, 0.0)) for v in (base, new)]
    padded = [times.get((v, 8192, 0.5)) for v in (base, new)]
    verdict = "KEEP"
    if ok and None not in dense and dense[1] <= 0.97 * dense[0]:
        if None not in padded and padded[1] <= padded[0]:
            verdict = "ADOPT"
    line = f"{verdict} checks_ok={ok} dense={dense} padded={padded}"
    print(line, flush=True)
    with open(os.path.join(OUT, "decision.txt"), "w") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
