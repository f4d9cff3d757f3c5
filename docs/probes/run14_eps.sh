# Device call (nvidia-h200), 2026-12-04: does Adam's epsilon stall sigmoid's attention at LR 3e-2 on real long
# cells (docs/stability.md 5k)? The cell of 5k (sigmoid, LR 3e-2, seed 0, same schedule, data order and masks) with
# train.eps=1e-15 instead of 1e-8, into its own record folders, cut by END: its metrics.jsonl so far comes back and
# is compared step by step with the committed eps=1e-8 run.  (carry .whl .longjob)
#   END=210 bash docs/probes/run14_eps.sh
# Ran once (the session's last ~300 device-seconds): data loading and compilation took most of the call, the run was
# cut at step 51, close to the eps=1e-8 run so far. The logged norms say Adam's second moment, not eps, stalls the
# attention (docs/stability.md 5k), so this probe is kept as the record of that call, not as the next experiment.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 SIGJAX_DATA_DIR=$PWD/.longjob
nvidia-smi -L; git rev-parse --short HEAD
G=stress_160m_long_eps
timeout $(( ${END:-200} - SECONDS )) python3 -m eval stability --config=configs/stress_160m_long.py \
  --attentions=${ATTENTION:-sigmoid} --learning_rates=3e-2 --seeds=0 --set=train.eps=${EPS:-1e-15} \
  --set=grid.name=$G --set=grid.record=docs/data/$G --set=grid.workdir=runs/$G \
  --set=grid.report=docs/data/stability/$G 2>&1 | grep -v -i warn | tail -n 12 | cut -c1-300
echo "stopped at ${SECONDS}s"
find runs/$G docs/data/$G docs/data/stability/$G -type f \( -name 'metrics.jsonl*' -o -name '*.json' -o -name '*.md' \) \
  -print0 2>/dev/null | tar czf $OUT/eps.tgz --null -T -
