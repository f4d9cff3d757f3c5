# Device call (same machine as run42_tanh_ds.sh), issue 14, thirty-first session. ~230 s.
# TDS=1 / TDS=0: the device copy's fused_backward defaults to tanh_ds=True / False (the default is True since run 23;
# run 23 ran this on f046b4a, whose default was False, with TDS=1 and without TDS); then run41_rows_in_model.sh's
# steps: `eval kernels` at H=64 (fwd+bwd vs cuDNN, dense and 50% padding) and whole steps at 8K tokens (`steps8k.sh`).
# Run with both values on one machine to compare.
#   TDS=1 OUT=... K_END=200 END=500 SEQ_LENS=8192,16384 ROUNDS=3 bash docs/probes/run43_tds_in_model.sh   (carry .whl)
if [ -n "$TDS" ]; then
  value=$([ "$TDS" = 0 ] && echo False || echo True)
  sed -i -E "s/^    tanh_ds: bool = (True|False),$/    tanh_ds: bool = $value,/" pallas_kernels/sigmoid_attention/hopper.py
  grep -c "^    tanh_ds: bool = $value,$" pallas_kernels/sigmoid_attention/hopper.py || exit 1
fi
source docs/probes/run41_rows_in_model.sh
