# Device call (after run48_first.sh on the same machine, or alone), issue 14, thirty-fifth session. <= 590 s.
# What run 26 left unmeasured, then whole steps: 1. on an H200 only, run39_h200_only.sh's causal check (H=128 and 64,
# T=4096, 4 rounds; the one bar last unmet on the H200); 2. the paper's kernel (TritonSigmoid) beside sigjax and
# cuDNN at T=4096 (H=128 and 64, dense and 50% padding) and at H=128, T=16384 with 50% padding (run49's harness);
# 3. whole steps at 8K tokens (steps8k.sh: 161.5M and base, dense). Stage deadlines (seconds since the start):
# C_END (causal, H200 only), K_END, END.
#   OUT=... bash docs/probes/run50_rest.sh       (carry .whl with triton_sigmoid-0.1.2-py3-none-any.whl)
source docs/probes/device_env.sh
K="python3 -m eval kernels --impls=pallas,cudnn --memory_impls= --causal=0"
source docs/probes/h200_causal.sh
K_END=${K_END:-400}
timeout $(left $(( K_END - 120 ))) $K,triton_sigmoid --out=$OUT/ts4k --head_dims=128,64 --seq_lens=4096 \
  --modes=fwd,fwdbwd --padding=0,0.5 --rounds=2 --triton_share=0.4 \
  --budget_s=$(left $(( K_END - 130 ))) 2>&1 | grep -v -i warn | tail -20
timeout $(left $K_END) $K,triton_sigmoid --out=$OUT/ts16k_pad --head_dims=128 --seq_lens=16384 \
  --modes=fwd,fwdbwd --padding=0.5 --rounds=2 --triton_share=0.45 \
  --budget_s=$(left $(( K_END - 10 ))) 2>&1 | grep -v -i warn | tail -12
END=${END:-585}; source docs/probes/steps8k.sh
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
