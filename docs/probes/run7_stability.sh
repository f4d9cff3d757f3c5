# Device calls of 2026-12-02 (nvidia-h200): cells of the 161.5M stability grid, one after the other, each record
# tarred into $OUT after each cell (a call's 10-minute limit fits two 600-step cells, ~270 s each with compilation).
#   CELLS="softmax:1e-2:0 sigmoid:1e-2:0" END=575 bash docs/probes/run7_stability.sh     (carry .whl)
#   GRID=configs/stress_160m_long.py SIGJAX_DATA_DIR=$PWD/.longjob CELLS="sigmoid:1e-2:0 softmax:1e-2:0" bash docs/probes/run7_stability.sh  (carry .whl, .longjob)
# Seventh session (2026-12-03): CELLS="softmax:1e-2:1 sigmoid:1e-2:2" END=585, "softmax:1e-2:2 sigmoid:3e-3:2" END=585,
#   "softmax:3e-3:2" END=315 (docs/stability.md 5e); a fresh machine gets only the tree's records, so untar each call's.
# Twelfth session (2026-12-03), real long cells and the pair of 5i (docs/stability.md 5i, 5j), .longjob holding the
#   scirpy sdist's one needed member repacked under the sdist's name (7.2 MB; see 5j):
#   SIGJAX_DATA_DIR=$PWD/.longjob GRID=configs/stress_160m_long.py CELLS="sigmoid:1e-2:0 softmax:1e-2:0" END=580
#   (softmax cut by END; resumed from its checkpoint, which the warm machine keeps under runs/, in the next call:)
#   OUT=$OUT/a SIGJAX_DATA_DIR=$PWD/.longjob GRID=configs/stress_160m_long.py CELLS="softmax:1e-2:0" END=330 ...;
#   OUT=$OUT/b GRID=configs/stress_160m_nonorm.py CELLS="sigmoid:3e-2:2" END=$((545-SECONDS)) ...  (carry .whl .longjob)
# 2026-12-04 (docs/stability.md 5k): GRID=configs/stress_160m_long.py CELLS="softmax:3e-2:0 sigmoid:3e-2:0" END=555,
#   then CELLS="sigmoid:3e-2:0" END=480 on the same warm machine (carry .whl .longjob both times).
# Then here: untar, copy docs/data/stress_160m_grid/synthetic/* into the tree, and
#   python -m eval stability --config=configs/stress_160m_grid.py --report_only
# END must lie inside the call's real limit: with little device time left the tool lowers the limit below timeout_s
# (a fresh machine's start, ~90 s, counts), and a cell killed from outside returns nothing (2026-12-03: 231 s lost).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
# Only what this call writes goes back: the whole docs/data/stress_160m_* is over the 16 MiB a returned file may have
# (2026-12-03: the no-norm LR 3e-2 records were lost that way).
touch /tmp/stamp_run7
for cell in $CELLS; do
  IFS=: read a lr s <<< "$cell"
  timeout $(( ${END:-570} - SECONDS )) python3 -m eval stability --config=${GRID:-configs/stress_160m_grid.py} --attentions=$a --learning_rates=$lr --seeds=$s 2>&1 | grep -v -i warn | tail -30
  # A cell cut by END leaves no record, only its work directory: its metrics so far come back too.
  find docs/data runs -type f \( -path 'docs/data/*' -o -name metrics.jsonl \) -newer /tmp/stamp_run7 -print0 |
    tar czf $OUT/records.tgz --null -T -
done
