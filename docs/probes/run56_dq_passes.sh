# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-seventh session. <= 340 s. dq_buffer.py's
# passes (the fused backward's float32 dq buffer zeroed and cast only where queries are valid, the new default):
# 1. compiled tests: test_dq_buffer.py and test_hopper.py (every one-GPU Hopper test, the new
#    test_dq_passes_skip_padding_and_agree_with_xla among them; TEST_END); 2. dq_passes.py: the op's fwd+bwd with
#    the new passes vs XLA's, dense and 50% padding, and the passes alone (END).
#   OUT=... bash docs/probes/run56_dq_passes.sh      (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L | tee $OUT/gpu.txt
timeout $(( ${TEST_END:-180} - SECONDS )) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_dq_buffer.py tests/attention/test_hopper.py -k "not Interpret" 2>&1 | grep -v -i warn > $OUT/tests.log
echo "pytest rc ${PIPESTATUS[0]}"; grep -E "FAILED|ERROR|passed|failed" $OUT/tests.log | tail -8
END=${END:-330}
SHAPES=${SHAPES:-64:4096,64:8192,128:4096} timeout $(( END - SECONDS )) \
  python3 docs/probes/dq_passes.py $(( END - SECONDS - 25 )) 2>&1 | grep -v -i warn | grep -v '"samples_s"' | tail -12
python3 - <<'PY'
import json, os
for line in open(os.environ["OUT"] + "/dq_passes.jsonl"):
    r = json.loads(line)
    if r.get("kind") == "time":
        print(r["h"], r["t"], r["lengths"], r["run"], r["dq_passes"], r.get("round", ""), r.get("dq_kernels", ""),
              "%.4f ms" % (1e3 * r.get("time_s", float("nan"))), r.get("error", "")[:200])
PY
