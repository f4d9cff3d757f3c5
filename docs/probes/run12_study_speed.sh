# One device call (nvidia-h200), issue 15: what one study run costs on its own, before the grid is run again.
# Runs 9-10 of 2026-12-02 (docs/results.md, "First attempt on the H200") ran 8 study runs at once: ~0.52 s per
# step each, GPU at 100%, with and without MPS, so no run finished in a 10-minute call. This call measures:
#   1. whole steps of configs/study_base.py in one process (`eval train-speed`, both attentions), batch 32 and 128;
#   2. where one step's time goes (docs/probes/step_parts.py: forward, forward+backward, whole step, per term);
#   3. one grid cell alone, end to end (training, scoring), timed.
# Carry .whl and .gpujob.   bash docs/probes/run12_study_speed.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 SIGJAX_DATA_DIR=$PWD/.gpujob
export XLA_FLAGS=--xla_gpu_autotune_level=0
nvidia-smi -L; mkdir -p /tmp/logs
for b in 32 128; do
  timeout 150 python3 -m eval train-speed --config=configs/study_base.py --set=data.batch_size=$b \
    --steps=20 --warmup=3 --repeats=3 --out=/tmp/speed_b$b 2>&1 | grep -v -i warn | tail -8
done
timeout 150 python3 docs/probes/step_parts.py --config=configs/study_base.py 2>&1 | grep '^{' | tee /tmp/logs/step_parts.jsonl
/usr/bin/time -v timeout $(( ${END:-570} - 20 - SECONDS )) python3 -m eval study --config=configs/study_base.py \
  --datasets=pbmc68k_reduced --attentions=sigmoid --learning_rates=3e-3 --seeds=0 > /tmp/logs/one_cell.txt 2>&1
grep -v -i warn /tmp/logs/one_cell.txt | tail -15
tar czf $OUT/study_speed.tgz /tmp/speed_b* /tmp/logs docs/data/study_base runs/study_base/*/*/metrics.jsonl 2>/dev/null
