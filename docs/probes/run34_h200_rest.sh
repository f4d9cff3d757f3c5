# Device call (nvidia-h200 wanted: the bars' card; after run32_table.sh on the same machine), issue 14,
# written in the twenty-seventh session, run on an H100 in the twenty-eighth (docs/benchmarks.md run 20). ~450 s.
# The rest of the issue's table and whole steps on run 19's kernels: 1. `eval kernels` at T=16384 dense, causal
# and not, fwd and fwd+bwd; 2. fwd+bwd with 50% padding at T=4K/8K/16K; 3. whole steps at 8K tokens, 161.5M and
# base, dense. Stage deadlines (seconds since the start): K16_END, PAD_END, END.
#   OUT=... bash docs/probes/run34_h200_rest.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
K="python3 -m eval kernels --head_dims=128,64 --impls=pallas,cudnn --memory_impls="
timeout $(left ${K16_END:-130}) $K --out=$OUT/kernels16k --seq_lens=16384 --modes=fwd,fwdbwd --padding=0 \
  --causal=0,1 --budget_s=$(left $(( ${K16_END:-130} - 10 ))) 2>&1 | grep -v -i warn | tail -12
timeout $(left ${PAD_END:-280}) $K --out=$OUT/kernels_pad --seq_lens=4096,8192,16384 --modes=fwdbwd --padding=0.5 \
  --causal=0 --budget_s=$(left $(( ${PAD_END:-280} - 10 ))) 2>&1 | grep -v -i warn | tail -4
END=${END:-470}; source docs/probes/steps8k.sh
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
