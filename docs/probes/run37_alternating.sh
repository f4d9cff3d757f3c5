# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, twenty-ninth session. ~580 s.
# 1. The compiled `test_sigmoid_attention.py` (the op through its custom VJP; last run compiled in run 18,
#    before runs 19-20 changed the Hopper kernels and the op's backward); 2. the first GPU run of the
#    order-neutral harnesses (run 20 found that a variant timed first ran up to ~5% faster): `eval kernels`
#    dense, causal and not, fwd and fwd+bwd vs cuDNN, H=64/128, T=$SEQ_LENS (8192), in 4 rounds (sigjax
#    leads rounds 1 and 3: `samples_s` keeps them in that order, `order_split.py` reads each order's ratio);
#    3. whole steps at 8K tokens (`steps8k.sh`: 161.5M and base, dense), sigmoid's and softmax's samples
#    alternating. Kernels as `ac65698`. Stage deadlines (seconds since the start): TESTS_END, K_END, END.
#   OUT=... bash docs/probes/run37_alternating.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${TESTS_END:-230}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_sigmoid_attention.py -k "not Interpret" 2>&1 | grep -v -i warn > $OUT/tests.log; tail -6 $OUT/tests.log
timeout $(left ${K_END:-360}) python3 -m eval kernels --out=$OUT/kernels --head_dims=128,64 \
  --seq_lens=${SEQ_LENS:-8192} --impls=pallas,cudnn --modes=fwd,fwdbwd --padding=0 --causal=0,1 --memory_impls= \
  --rounds=${ROUNDS:-4} --budget_s=$(left $(( ${K_END:-360} - 15 ))) 2>&1 | grep -v -i warn | tail -14
END=${END:-585}; source docs/probes/steps8k.sh
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
