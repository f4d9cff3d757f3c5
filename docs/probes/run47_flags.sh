# Device call (any single GPU), issue 14, thirty-third session. ~460 s.
# The 161.5M step (configs/stress_160m.py, 8 x 8,192 dense tokens) under XLA flag sets, one process per set
# (`xla_flags.py`: step time as `eval train-speed`, then device time by part from a 3-step trace). The baseline
# runs first and last (drift between processes). Deadline END (seconds since the start).
#   OUT=... bash docs/probes/run47_flags.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L | tee $OUT/gpu.txt
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
while read label attention flags; do
  [ $(left ${END:-560}) -gt 40 ] || { echo "skipped $label (deadline)"; continue; }
  XLA_FLAGS="$flags" timeout $(left ${END:-560}) python3 docs/probes/xla_flags.py --config=configs/stress_160m.py \
    --attention=$attention --label=$label ${ARGS:-} > /tmp/$label.log 2>&1
  grep '^{' /tmp/$label.log >> $OUT/flags.jsonl; grep -v -i warn /tmp/$label.log | tail -2 | cut -c1-400
done <<LIST
${VARIANTS:-base sigmoid
lt sigmoid --xla_gpu_enable_cublaslt=true
notriton sigmoid --xla_gpu_enable_triton_gemm=false
lt_notriton sigmoid --xla_gpu_enable_cublaslt=true --xla_gpu_enable_triton_gemm=false
cudnn_ln sigmoid --xla_gpu_enable_cudnn_layer_norm=true
base2 sigmoid
softmax softmax}
LIST
