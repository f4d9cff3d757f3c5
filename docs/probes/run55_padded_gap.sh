# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-seventh session. <= 500 s. Where the padded
# fwd+bwd loses rate on the final kernels (run 29: 0.80-0.81 of dense at T=4096, 0.86-0.88 at 8192, 0.94-0.95 at
# 16384): padded_gap.py (kernels alone vs the op, dense / equal / uneven lengths, and the dq buffer's XLA passes) at
# H=64 and 128, T=4096 and 8192. END: deadline (seconds since the start).
#   OUT=... bash docs/probes/run55_padded_gap.sh      (carry .whl)
source docs/probes/device_env.sh
END=${END:-480}
SHAPES=${SHAPES:-64:4096,128:4096,64:8192,128:8192} timeout $(left $END) \
  python3 docs/probes/padded_gap.py $(left $(( END - 30 ))) 2>&1 | grep -v -i warn | tail -3
python3 - <<'PY'
import json, os
for line in open(os.environ["OUT"] + "/padded_gap.jsonl"):
    r = json.loads(line)
    if r.get("kind") == "time":
        print(r["h"], r["t"], r["lengths"], r["run"], "%.3f ms" % (1e3 * r["time_s"]),
              "%.0f TF" % r.get("tf", 0), "kept %.3f" % r.get("kept_of_dense", 0))
PY
