# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-fourth session. <= 460 s.
# Both compiled attention suites on the final tree with `-v` and `--durations` and a longer limit than run 25's 290 s,
# which one test outlived (`-q` did not name it): the log names every test as it finishes and the slowest ones with
# their times. On an H200, chain `run39_h200_only.sh` and `run37_alternating.sh` on the warm machine next.
#   OUT=... bash docs/probes/run48_first.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L | tee $OUT/gpu.txt; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${TEST_END:-450}) python3 -m pytest -v -rs --durations=20 -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_sigmoid_attention.py tests/attention/test_hopper.py -k "not Interpret" 2>&1 \
  | grep -v -i warn > $OUT/tests.log
echo "pytest rc ${PIPESTATUS[0]}"; grep -c PASSED $OUT/tests.log; grep -E "FAILED|ERROR" $OUT/tests.log | head; tail -28 $OUT/tests.log
