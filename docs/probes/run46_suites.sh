# Device call (same machine as run44/run45), issue 14, thirty-second session. ~430 s.
# 1. Both compiled attention suites on this tree (`-m gpu`, every implementation: the Triton kernels with tanh_ds,
# the Hopper kernels with q_scaled through the op); 2. `triton_tds.py` (the portable backward with and without
# tanh_ds: compiled checks, then the kernels alone, H=64/128, T=8192, dense and 50% padding). Deadlines TEST_END, END.
#   OUT=... bash docs/probes/run46_suites.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${TEST_END:-330}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_sigmoid_attention.py tests/attention/test_hopper.py -k "not Interpret" 2>&1 \
  | grep -v -i warn > $OUT/tests.log; tail -6 $OUT/tests.log
ROUNDS=${ROUNDS:-3} OUT=$OUT timeout $(left ${END:-430}) python3 docs/probes/triton_tds.py $(( ${END:-430} - SECONDS - 10 )) 2>&1 \
  | grep -v -i warn | grep -v "\"kind\": \"time\"" | cut -c1-300 | tail -12
