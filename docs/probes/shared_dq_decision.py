"""Reads $OUT/hopper_bwd.jsonl (docs/probes/hopper_bwd.py's timings) and switches shared_dq on for
H=64 bfloat16 in this copy's tuned/default.json if it is >= 3% faster than the overlap variant
at H=64, T=8192, dense. Prints every timing and the decision (run16_h64.sh, run19_first.sh)."""

import json
import os

path = os.environ["OUT"] + "/hopper_bwd.jsonl"
lines = open(path) if os.path.exists(path) else []  # None when the probe stage was skipped (P=5).
recs = [json.loads(line) for line in lines if '"kind": "time"' in line]
for r in recs:
    print(r["variant"], r["h"], r["t"], r["lens"], round(r.get("time_s", 0) * 1e3, 3), "ms",
          round(r.get("tflops_bwd", 0)), "TF", r.get("error", "")[:200])  # fmt: skip
dense = [r for r in recs if (r["h"], r["t"], r["padding"]) == (64, 8192, 0) and "time_s" in r]
t = {r["variant"]: r["time_s"] for r in dense}
over, shared = t.get("hopper_overlap1_stages2"), t.get("hopper_overlap1_shared_dq1_stages2")
on = bool(over and shared and shared < 0.97 * over)
ratio = shared and over and round(shared / over, 3)
print("H=64 shared_dq / overlap time:", ratio, "-> table on:", on)
if on:
    path = "pallas_kernels/sigmoid_attention/tuned/default.json"
    table = json.load(open(path))
    for e in table["entries"]:
        if e["head_dim"] == 64 and e["dtype"] == "bfloat16":
            e["config"]["hopper_shared_dq"] = True
    json.dump(table, open(path, "w"), indent=1)
