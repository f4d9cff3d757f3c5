# Device call (after run37_alternating.sh on the same machine), issue 14, twenty-ninth session. ~580 s.
# `eval kernels` in 4 rounds (order split readable with order_split.py): dense fwd and fwd+bwd at T=4096
# and 16384, causal and not; fwd+bwd with 50% padding at T=4K/8K/16K. Stage deadlines (seconds since the
# start): K_END, END.
#   OUT=... bash docs/probes/run38_suite_rest.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
K="python3 -m eval kernels --head_dims=128,64 --impls=pallas,cudnn --memory_impls= --rounds=4"
timeout $(left ${K_END:-360}) $K --out=$OUT/kernels --seq_lens=4096,16384 --padding=0 --causal=0,1 \
  --modes=fwd,fwdbwd --budget_s=$(left $(( ${K_END:-360} - 10 ))) 2>&1 | grep -v -i warn | tail -6
timeout $(left ${END:-585}) $K --out=$OUT/kernels_pad --seq_lens=4096,8192,16384 --padding=0.5 --causal=0 \
  --modes=fwdbwd --budget_s=$(left $(( ${END:-585} - 10 ))) 2>&1 | grep -v -i warn | tail -6
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
