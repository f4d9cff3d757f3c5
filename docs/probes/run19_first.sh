# Device call (nvidia-h200 or one H100), issue 14, 2026-12-05 (twentieth session): what matters most when one call is
# all a session gets. 1. the compiled kernel suites (`-m gpu`: test_sigmoid_attention.py, test_hopper.py; the Hopper
# forward's padded-row epilogue has not run compiled) until T1; 2. the H=64 backward with and without shared_dq
# (docs/probes/hopper_bwd.py, CHECKS=0) and the table decision (docs/probes/shared_dq_decision.py) until P;
# 3. a profile of the 161.5M step by op (docs/probes/step_profile.py, $ATTS) until END. Seconds since the start.
#   bash docs/probes/run19_first.sh         (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices()[0].compute_capability)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${T1:-300}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 4 \
  tests/attention/test_sigmoid_attention.py tests/attention/test_hopper.py 2>&1 | tee $OUT/tests.log | tail -8
CHECKS=0 timeout $(left ${P:-410}) python3 docs/probes/hopper_bwd.py $(( ${P:-410} - SECONDS - 25 )) 2>&1 \
  | grep -v -i warn | grep -v '"kind": "time"' | tail -3
python3 docs/probes/shared_dq_decision.py | tee $OUT/decision.txt
timeout $(left ${END:-585}) python3 docs/probes/step_profile.py --config=configs/stress_160m.py --steps=5 --top=40 \
  --attentions=${ATTS:-sigmoid,softmax} 2>&1 | grep -v -i warn | tee $OUT/step_profile.jsonl | grep wall_s
