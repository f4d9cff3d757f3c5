# Device call(s) (nvidia-h200), issue 15: the representation grid as run9_study.sh, with the CUDA MPS daemon started
# first when the machine has it. Run 9 (8 shards, no MPS) ran 8 runs in ~540 s: 0.4-0.55 s per 512-token step,
# ~10x one process's step time, as the 8 processes time-slice the GPU. MPS lets their kernels run side by side.
# Logs GPU utilisation and the load every 15 s. Carry .whl and .gpujob.
#   K=8 END=570 bash docs/probes/run11_study_mps.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 SIGJAX_DATA_DIR=$PWD/.gpujob
export XLA_FLAGS=--xla_gpu_autotune_level=0 OMP_NUM_THREADS=2
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
nvidia-smi -L; mkdir -p /tmp/logs $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
if pgrep -f nvidia-cuda-mps-control > /dev/null; then echo "MPS already running"
elif command -v nvidia-cuda-mps-control > /dev/null; then nvidia-cuda-mps-control -d && echo "MPS started"
else echo "no MPS on this machine"; fi
(while true; do echo "$SECONDS $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader) \
load $(cut -d' ' -f1 /proc/loadavg)"; sleep 15; done) > /tmp/logs/gpu_util.txt 2>&1 &
K=${K:-8}
for i in $(seq 0 $((K - 1))); do
  timeout $(( ${END:-570} - 20 - SECONDS )) python3 -m eval study --config=configs/study_base.py --shard=$i/$K \
    >> /tmp/logs/shard_$i.txt 2>&1 &
done
wait $(jobs -p | tail -n $K)
kill %1 2>/dev/null
cat /tmp/logs/gpu_util.txt | tail -40
grep -h "perf/step_time\|finished\|Error" /tmp/logs/shard_*.txt | tail -20
ls -d docs/data/study_base/*/*/scores.json 2>/dev/null | wc -l
tar czf $OUT/study.tgz docs/data/study_base /tmp/logs 2>/dev/null
