# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-seventh session. <= 560 s. What is still
# unmeasured, on whichever card comes:
# - an H200 (the targets' card, not lent since run 18): run39_h200_only.sh's causal check (H=128 and 64, T=4096,
#   4 rounds; C_END), then whole steps at 8K tokens (steps8k.sh; END);
# - an H100: TritonSigmoid beside sigjax and cuDNN at H=64, T=4096, dense and 50% padding (run 28's budget cut them;
#   K1_END), at H=128, T=16384 with 50% padding (K_END), then whole steps at 8K tokens (steps8k.sh; END).
#   OUT=... bash docs/probes/run52_either.sh      (carry .whl with the triton_sigmoid wheel)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L | tee $OUT/gpu.txt; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
K="python3 -m eval kernels --impls=pallas,cudnn,triton_sigmoid --memory_impls= --causal=0 --modes=fwd,fwdbwd --rounds=2"
if grep -q H200 $OUT/gpu.txt; then
  timeout $(left ${C_END:-150}) python3 -m eval kernels --out=$OUT/causal --head_dims=128,64 --seq_lens=4096 \
    --impls=pallas,cudnn --modes=fwdbwd --padding=0 --causal=0,1 --memory_impls= --rounds=4 \
    --budget_s=$(left $(( ${C_END:-150} - 10 ))) 2>&1 | grep -v -i warn | tail -8
else
  K1_END=${K1_END:-170}; K_END=${K_END:-300}
  timeout $(left $K1_END) $K --out=$OUT/ts4k_h64 --head_dims=64 --seq_lens=4096 --padding=0,0.5 \
    --triton_share=0.45 --budget_s=$(left $(( K1_END - 10 ))) 2>&1 | grep -v -i warn | tail -10
  timeout $(left $K_END) $K --out=$OUT/ts16k_pad --head_dims=128 --seq_lens=16384 --padding=0.5 \
    --triton_share=0.45 --budget_s=$(left $(( K_END - 10 ))) 2>&1 | grep -v -i warn | tail -8
fi
END=${END:-550}; source docs/probes/steps8k.sh
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
