# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-seventh session. <= 560 s. What is still
# unmeasured, on whichever card comes:
# - an H200 (the targets' card, not lent since run 18): run39_h200_only.sh's causal check (H=128 and 64, T=4096,
#   4 rounds; C_END), then whole steps at 8K tokens (steps8k.sh; END);
# - an H100: TritonSigmoid beside sigjax and cuDNN at H=64, T=4096, dense and 50% padding (run 28's budget cut them;
#   K1_END), at H=128, T=16384 with 50% padding (K_END), then whole steps at 8K tokens (steps8k.sh; END).
#   OUT=... bash docs/probes/run52_either.sh      (carry .whl with the triton_sigmoid wheel)
source docs/probes/device_env.sh
K="python3 -m eval kernels --impls=pallas,cudnn,triton_sigmoid --memory_impls= --causal=0 --modes=fwd,fwdbwd --rounds=2"
source docs/probes/h200_causal.sh
if [ $ON_H200 = 0 ]; then
  K1_END=${K1_END:-170}; K_END=${K_END:-300}
  timeout $(left $K1_END) $K --out=$OUT/ts4k_h64 --head_dims=64 --seq_lens=4096 --padding=0,0.5 \
    --triton_share=0.45 --budget_s=$(left $(( K1_END - 10 ))) 2>&1 | grep -v -i warn | tail -10
  timeout $(left $K_END) $K --out=$OUT/ts16k_pad --head_dims=128 --seq_lens=16384 --padding=0.5 \
    --triton_share=0.45 --budget_s=$(left $(( K_END - 10 ))) 2>&1 | grep -v -i warn | tail -8
fi
END=${END:-550}; source docs/probes/steps8k.sh
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
