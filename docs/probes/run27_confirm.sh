# Device call (nvidia-h200, or one H100), issue 14, twenty-sixth session. ~560 s.
# The tree with the persistent kernels removed again (hopper.py as of 439c509, run 17's table): 1. the compiled
# suites of both attention test files to the end (run 17 stopped them at 270 s with 2 not reached), 2. whole steps
# at 8K tokens (161.5M and base, dense), sigmoid vs softmax in one process each. Stage deadlines in seconds since the
# start: TESTS_END, END.
#   OUT=... bash docs/probes/run27_confirm.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${TESTS_END:-340}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_sigmoid_attention.py tests/attention/test_hopper.py -k "not Interpret" 2>&1 \
  | grep -v -i warn > $OUT/tests.log; tail -8 $OUT/tests.log
source docs/probes/steps8k.sh
