# Device calls (nvidia-h200) for the rest of the zero-shot grid (configs/zeroshot_grid.py): the 12 runs at LR 3e-4
# and 3e-3 (the LR 1e-3 column is imported, docs/probes/import_zeroshot_records.py). Two processes share the GPU
# (`--shard=0/2` takes the sigmoid runs, `1/2` the softmax ones: the grid's cells alternate the attentions), so the
# runs of a seed pair finish together. Each call must start within 30 s of the last one's end (the idle release).
#   STAGE=install bash docs/probes/run10_pooled.sh                    (carry .whl .gpujob: wheels, labelled sets)
#   END=585 bash docs/probes/run12_zeroshot_grid.sh                   (carry .pooled: restores the corpus)
#   END=585 bash docs/probes/run12_zeroshot_grid.sh                   (again, no carry: the corpus stays in /tmp;
#                                                                      finished runs are skipped, a cut one resumes
#                                                                      from its checkpoint under runs/, kept warm)
# Then here: untar each call's $OUT/records.tgz at the repository root (it holds docs/data/zeroshot_grid/...), and
#   python -m eval study --config=configs/zeroshot_grid.py --report_only
# A seed pair (both attentions at once) took 290-390 s to train and score at LR 1e-3: ~1.5 pairs per 585-s call, so
# the six pairs need ~4 calls (~35 device-minutes with the start and install): more than one session's budget.
# SHARDS=4 runs four processes at once, one per (learning rate, attention), each over the three seeds. Measured
# (2026-12-03): the four runs of a seed took 327-355 s to train and 139-153 s to score, so one seed's four runs fit
# one 585-s call; seeds 0 and 1 ran in two calls. Seed 2 (2026-12-04): install, then one call with .pooled carried
# (the committed records of seeds 0-1 travel with the tree and are skipped): 350-353 s to train, 192-194 s to score.
# Issue each call at once after the last one returns, with no other tool call between: a machine idle for 30 s is
# released and its /tmp lost.
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 SIGJAX_DATA_DIR=/tmp/gpujob
[ -d /tmp/site ] || { echo "no /tmp/site: run STAGE=install bash docs/probes/run10_pooled.sh first"; exit 1; }
nvidia-smi -L; git rev-parse --short HEAD; mkdir -p /tmp/logs; touch /tmp/stamp_run12
if [ -f .pooled/meta.json ]; then python3 docs/probes/compact_h5ad.py unpack .pooled /tmp/pooled.h5ad || exit 1; fi
[ -f /tmp/pooled.h5ad ] || { echo "no /tmp/pooled.h5ad: carry .pooled"; exit 1; }
N=${SHARDS:-2}
for shard in $(seq 0 $((N - 1))); do
  timeout $(( ${END:-570} - 20 - SECONDS )) python3 -m eval study --config=configs/zeroshot_grid.py \
    --set=data.path=/tmp/pooled.h5ad --learning_rates=${LRS:-3e-4,3e-3} --shard=$shard/$N \
    > /tmp/logs/grid_shard$shard.txt 2>&1 &
done
wait
echo "stopped at ${SECONDS}s"
for f in /tmp/logs/grid_shard*.txt; do echo "== $f"; grep -E "^== |Error|error" $f | tail -n 8; done | cut -c1-200
# Only what this call wrote: the records of the runs it finished (and their zeroshot.json/.md).
find docs/data/zeroshot_grid -type f -newer /tmp/stamp_run12 -print0 | tar czf $OUT/records.tgz --null -T -
tar czf $OUT/logs.tgz /tmp/logs 2>/dev/null
