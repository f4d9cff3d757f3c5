# Sourced by device scripts after their installs, with left() defined: on an H200 only ($OUT/gpu.txt), the causal
# check of run39_h200_only.sh (fwd+bwd vs cuDNN, causal and not, H=128 and 64, T=4096, 4 rounds; deadline C_END),
# the one bar last unmet on the H200 (run 18). Sets ON_H200 to 1 or 0.
ON_H200=0
if grep -q H200 $OUT/gpu.txt; then
  ON_H200=1
  timeout $(left ${C_END:-150}) python3 -m eval kernels --out=$OUT/causal --head_dims=128,64 --seq_lens=4096 \
    --impls=pallas,cudnn --modes=fwdbwd --padding=0 --causal=0,1 --memory_impls= --rounds=4 \
    --budget_s=$(left $(( ${C_END:-150} - 10 ))) 2>&1 | grep -v -i warn | tail -8
fi
