# Device call (same machine as run40_dq_rows.sh), issue 14, thirtieth session. ~560 s.
# With ROWS=1, the device copy's table turns on dq_rows at H=64 (hopper_shared_dq and hopper_dq_rows in the
# H=64 bfloat16 entry of tuned/default.json; the committed table is not changed); then 1. `eval kernels` H=64,
# fwd+bwd vs cuDNN, dense and 50% padding, T=$SEQ_LENS, 4 rounds; 2. whole steps at 8K tokens (`steps8k.sh`).
# Run once with ROWS=1 and once without (the same machine) to compare.
#   ROWS=1 OUT=... bash docs/probes/run41_rows_in_model.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
if [ -n "$ROWS" ]; then
  python3 - <<'PY'
import json
p = "pallas_kernels/sigmoid_attention/tuned/default.json"
table = json.load(open(p))
for e in table["entries"]:
    if e["head_dim"] == 64 and e["dtype"] == "bfloat16" and e["config"].get("hopper_bwd"):
        e["config"].update(hopper_shared_dq=True, hopper_dq_rows=True)
        print("dq_rows on:", e["config"])
json.dump(table, open(p, "w"), indent=1)
PY
fi
timeout $(left ${K_END:-250}) python3 -m eval kernels --out=$OUT/kernels --head_dims=64 --seq_lens=${SEQ_LENS:-8192,16384} \
  --impls=pallas,cudnn --modes=fwdbwd --padding=0,0.5 --causal=0 --memory_impls= --rounds=${ROUNDS:-4} \
  --budget_s=$(left $(( ${K_END:-250} - 15 ))) 2>&1 | grep -v -i warn | tail -10
END=${END:-560}; source docs/probes/steps8k.sh
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
