# Device call (nvidia-h200 or one H100), issue 14, 2026-12-05 (nineteenth session): where padded batches lose speed,
# memory, and (unless TESTS=0) the compiled kernel suites. After run16_h64.sh, whose table decision it does not repeat.
# 0. (added 2026-12-05, twenty-first session) docs/probes/qkv_layout.py: one attention block with the fused QKV
#    projection's slices vs three matmuls, sigmoid and softmax, 161.5M shapes (until Q);
# 1. docs/probes/padded_gap.py: the Hopper kernels alone vs the whole op, dense / equal / uneven lengths (until G);
# 2. `python -m eval kernels` peak memory of fwd+bwd, pallas vs cuDNN, H=64/128, T=4K-16K (until M); 3. the compiled
#    suites `tests/attention/test_sigmoid_attention.py` and `test_hopper.py` `-m gpu` (until END; the Hopper forward's
#    new epilogue has not run compiled).
#   bash docs/probes/run18_padded.sh         (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices()[0].compute_capability)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
[ "${Q:-90}" = 0 ] || timeout $(left ${Q:-90}) python3 docs/probes/qkv_layout.py 2>&1 | grep -v -i warn | tail -4
timeout $(left ${G:-230}) python3 docs/probes/padded_gap.py $(( ${G:-230} - SECONDS - 20 )) 2>&1 \
  | grep -v -i warn | grep -v '"kind": "time"' | tail -4
python3 - <<'PY'
import json, os
for l in open(os.environ["OUT"] + "/padded_gap.jsonl"):
    r = json.loads(l)
    if r.get("kind") == "time":
        print(r["h"], r["t"], r["lengths"], r["run"], round(r.get("tf", 0)), "TF kept", round(r.get("kept_of_dense", 0), 3), r.get("error", "")[:150])
PY
timeout $(left ${M:-340}) python3 -m eval kernels --out=$OUT/memory --head_dims=64,128 --seq_lens=8192 --impls=pallas,cudnn \
  --modes=fwd --padding=0 --causal=0 --memory_impls=pallas,cudnn --memory_seq_lens=4096,8192,16384 --memory_share=0.9 \
  --budget_s=$(( ${M:-340} - SECONDS - 15 )) 2>&1 | grep -v -i warn | tail -12
[ "${TESTS:-1}" = 0 ] || timeout $(left ${END:-585}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 4 \
  tests/attention/test_sigmoid_attention.py tests/attention/test_hopper.py 2>&1 | tee $OUT/tests.log | tail -6
