# Device call (same machine as run42_tanh_ds.sh), issue 14, thirty-first session. ~560 s.
# With TDS=1 the device copy's fused_backward defaults to tanh_ds=True (the committed default is not changed); then
# run41_rows_in_model.sh's steps: `eval kernels` at H=64 (fwd+bwd vs cuDNN, dense and 50% padding) and whole steps at
# 8K tokens (`steps8k.sh`). Run with and without TDS on one machine to compare.
#   TDS=1 OUT=... bash docs/probes/run43_tds_in_model.sh          (carry .whl)
if [ -n "$TDS" ]; then
  sed -i 's/^    tanh_ds: bool = False,$/    tanh_ds: bool = True,/' pallas_kernels/sigmoid_attention/hopper.py
  grep -c "^    tanh_ds: bool = True,$" pallas_kernels/sigmoid_attention/hopper.py || exit 1
fi
source docs/probes/run41_rows_in_model.sh
