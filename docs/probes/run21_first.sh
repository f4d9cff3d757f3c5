# Device call (nvidia-h200 or one H100), issue 14, 2026-12-06 (twenty-third session): what run 15 left unmeasured,
# most needed first. Seconds since the start; each stage stops at its deadline.
# 1. the compiled Triton suite (`-m gpu tests/attention/test_sigmoid_attention.py`, -v): its kernels clear padded
#    tokens in boundary tiles since `8ed53f9` (after run 15), checked so far in the interpreter only (until T1);
# 2. `python -m eval kernels` peak memory of fwd+bwd at H=64 and 128 with one process per head dim (the harness fixed
#    after run 15 spoiled H=128's peaks), then fwd and fwd+bwd vs cuDNN at T=4K-16K, dense and 50% padding: the
#    issue's whole table on one card (until END). On an H200 this is the bars' card; on an H100 compare with run 15.
#   bash docs/probes/run21_first.sh         (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices()[0].compute_capability)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${T1:-200}) python3 -m pytest -v -rs -p no:cacheprovider -m gpu -n ${WORKERS:-8} \
  tests/attention/test_sigmoid_attention.py > $OUT/tests.log 2>&1
grep -c PASSED $OUT/tests.log; grep -E "FAILED|ERROR" $OUT/tests.log | head -5; tail -3 $OUT/tests.log
timeout $(left ${END:-585}) python3 -m eval kernels --out=$OUT/kernels --head_dims=64,128 --seq_lens=4096,8192,16384 \
  --impls=pallas,cudnn --modes=fwd,fwdbwd --padding=0,0.5 --causal=0 --memory_impls=pallas,cudnn \
  --memory_seq_lens=4096,8192,16384 --memory_share=0.2 --budget_s=$(( ${END:-585} - SECONDS - 20 )) 2>&1 \
  | grep -v -i warn | tail -16
