# Device call(s) (nvidia-h200), issue 15, after run12 (2026-12-02, fourth session): one study_base run alone took
# 65 ms per step (1,000 steps, PBMC: ~4.7K valid tokens per step, ~11 TFLOPS) and docs/probes/step_parts.py found the
# synthetic 32 x 512 step at 165 ms, the forward at 77 ms, whatever the objective terms. Both ran under
# XLA_FLAGS=--xla_gpu_autotune_level=0 (set by runs 6, 9, 11 and 12 to keep compiles short); the train-speed runs of
# configs/base.py (run 8, 0.103 s for 65K tokens) did not set it. This call:
#   1. (PROFILE=1) traces 10 synthetic study_base steps per attention with XLA's default autotuning, then sigmoid
#      again with autotune level 0 (docs/probes/step_profile.py: device time per op) -> /tmp/logs/profile*.jsonl;
#   2. runs the study grid as K shards (default 2) with default autotuning and one shared persistent compilation
#      cache (/tmp/jax_cache: kept across calls chained on the same warm machine) until END seconds.
# Carry .whl and .gpujob. Records come back in $OUT/study.tgz (docs/data/study_base/), profiles with them.
#   PROFILE=1 K=2 END=570 bash docs/probes/run13_profile_study.sh      (first call)
#   K=2 END=570 bash docs/probes/run13_profile_study.sh                (chained calls: finished runs are skipped)
# On nvidia-h200-x2 the shards alternate between the two GPUs (shard i on GPU i mod 2).
# Between chained calls, untar $OUT/study.tgz into the tree first (tar xzf ... docs/data/study_base): each call gets
# a fresh copy of the tree's docs/data, so a record left out is trained again (from its checkpoint, if the machine
# kept runs/) and rescored. Fifth session: 3 calls, 14 runs finished (docs/results.md "Third attempt").
# Sixth session: K=4 END=575, K=4 END=575, K=4 END=535 (the machine was released before the third call), the
# other 40 runs finished; the grid is complete (docs/results.md "Fourth attempt").
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 SIGJAX_DATA_DIR=$PWD/.gpujob
export JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache OMP_NUM_THREADS=4
nvidia-smi -L; mkdir -p /tmp/logs
if [ "${PROFILE:-0}" = 1 ]; then
  timeout 200 python3 docs/probes/step_profile.py --config=configs/study_base.py --steps=10 --top=25 \
    2>/dev/null | grep '^{' > /tmp/logs/profile.jsonl
  XLA_FLAGS=--xla_gpu_autotune_level=0 timeout 100 python3 docs/probes/step_profile.py \
    --config=configs/study_base.py --steps=10 --top=15 --attentions=sigmoid 2>/dev/null | grep '^{' \
    > /tmp/logs/profile_autotune0.jsonl
  grep wall_s /tmp/logs/profile*.jsonl
fi
K=${K:-2}; GPUS=$(nvidia-smi -L | wc -l)
for i in $(seq 0 $((K - 1))); do
  CUDA_VISIBLE_DEVICES=$((i % GPUS)) timeout $(( ${END:-570} - 15 - SECONDS )) python3 -m eval study --config=configs/study_base.py --shard=$i/$K \
    > /tmp/logs/shard_$i.txt 2>&1 &
done
wait
grep -h "^== " /tmp/logs/shard_*.txt | tail -20
ls -d docs/data/study_base/*/*/ 2>/dev/null | wc -l
tar czf $OUT/study.tgz docs/data/study_base /tmp/logs 2>/dev/null
