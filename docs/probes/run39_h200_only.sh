# Device call (nvidia-h200; does nothing on another card), issue 14, twenty-ninth session. ~150 s on an H200.
# The one bar last unmet on the H200 (run 18: causal fwd+bwd 0.65x the non-causal time at H=128, T=4096),
# re-measured with run 19's causal mask and the order-neutral `eval kernels` (4 rounds), H=128 and 64.
#   OUT=... bash docs/probes/run39_h200_only.sh          (carry .whl)
nvidia-smi -L | tee $OUT/gpu.txt | grep -q H200 || { echo "not an H200: nothing run"; exit 0; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
timeout ${END:-170} python3 -m eval kernels --out=$OUT/kernels --head_dims=128,64 --seq_lens=4096 --impls=pallas,cudnn \
  --modes=fwdbwd --padding=0 --causal=0,1 --memory_impls= --rounds=4 --budget_s=$(( ${END:-170} - 15 )) 2>&1 \
  | grep -v -i warn | tail -8
find $OUT -name '*.png' -delete
