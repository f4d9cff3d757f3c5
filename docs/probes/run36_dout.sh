# Device call (nvidia-h200, or one H100), issue 14, twenty-eighth session. ~400 s.
# The Hopper backward clears padded rows of d_out's tiles itself and the custom VJP drops its XLA pass over d_out.
# 1. the compiled Hopper suite; 2. `dout_pass.py`: the op's forward+backward with that pass put back vs without,
# H=64/128, T=4K/8K, dense and 50% padding; 3. whole steps of the 161.5M config at 8K tokens, sigmoid vs softmax.
# Stage deadlines in seconds since the start: TESTS_END, PASS_END, END.
#   OUT=... bash docs/probes/run36_dout.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${TESTS_END:-190}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_hopper.py -k "not Interpret" 2>&1 | grep -v -i warn > $OUT/tests.log; tail -4 $OUT/tests.log
OUT=$OUT timeout $(left ${PASS_END:-320}) python3 docs/probes/dout_pass.py 2>&1 | grep -v -i warn | tail -8
timeout $(left ${END:-460}) python3 -m eval train-speed --steps=10 --warmup=2 --repeats=3 --config=configs.stress_160m \
  --out=$OUT/speed 2>&1 | grep -v -i warn | tail -6
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
