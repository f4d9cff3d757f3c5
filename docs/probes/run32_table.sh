# Device call (nvidia-h200, or one H100), issue 14, twenty-seventh session. ~560 s.
# The tree with the causal mask from 1-D iotas and the backward's register split 240/24 (run 19
# calls 2-4): 1. the compiled Hopper suite; 2. `eval kernels` dense, causal and not, fwd and
# fwd+bwd vs cuDNN, H=64/128, T=4096/8192. Stage deadlines in seconds since the start: TESTS_END, END.
#   OUT=... bash docs/probes/run32_table.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${TESTS_END:-245}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_hopper.py -k "not Interpret" 2>&1 | grep -v -i warn > $OUT/tests.log; tail -4 $OUT/tests.log
timeout $(left ${END:-570}) python3 -m eval kernels --out=$OUT/kernels --head_dims=128,64 --seq_lens=4096,8192 \
  --impls=pallas,cudnn --modes=fwd,fwdbwd --padding=0 --causal=0,1 --memory_impls= \
  --budget_s=$(left $(( ${END:-570} - 25 ))) 2>&1 | grep -v -i warn | tail -30
