# Device call (nvidia-h200 or one H100), issue 14, 2026-12-05 (twenty-first session): one call that covers what is
# still unmeasured, most needed first. Seconds since the start; each stage stops at its deadline.
# 1. the compiled kernel suites (`-m gpu`, test_sigmoid_attention.py and test_hopper.py) with -v, so the log names
#    every test that finished (run 13's -q log did not) until T1; 2. docs/probes/qkv_layout.py (fused QKV slices vs
#    three matmuls, sigmoid and softmax, 161.5M shapes) until Q; 3. `python -m eval kernels` fwd+bwd vs cuDNN at
#    T=8192, H=64 and 128, dense and 50% padding, and causal vs not, until K; 4. whole steps of the 161.5M config
#    (`eval train-speed`, sigmoid vs softmax, dense) until END.
# Run 14 (the session's only call, 166 s) ran qkv_layout.py and 32 of the 69 compiled tests (26 Hopper ones), so the
# Triton suite (test_sigmoid_attention.py) now goes first; the model has the split QKV projection since `7e79f26`.
#   bash docs/probes/run20_first.sh         (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices()[0].compute_capability)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${T1:-270}) python3 -m pytest -v -rs -p no:cacheprovider -m gpu -n ${WORKERS:-8} \
  tests/attention/test_sigmoid_attention.py tests/attention/test_hopper.py > $OUT/tests.log 2>&1
grep -c PASSED $OUT/tests.log; grep -E "FAILED|ERROR" $OUT/tests.log | head -5; tail -3 $OUT/tests.log
timeout $(left ${Q:-330}) python3 docs/probes/qkv_layout.py 2>&1 | grep -v -i warn | tail -4
timeout $(left ${K:-470}) python3 -m eval kernels --out=$OUT/kernels --head_dims=64,128 --seq_lens=8192 \
  --impls=pallas,cudnn --modes=fwdbwd --memory_impls= --padding=0,0.5 --causal=0,1 \
  --budget_s=$(( ${K:-470} - SECONDS - 20 )) 2>&1 | grep -v -i warn | tail -12
timeout $(left ${END:-585}) python3 -m eval train-speed --steps=10 --warmup=2 --repeats=3 \
  --config=configs.stress_160m --out=$OUT/speed_s160 2>&1 | grep -v -i warn | tail -4
