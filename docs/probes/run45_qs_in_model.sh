# Device call (same machine as run44_scaled_q.sh), issue 14, thirty-second session. ~230 s.
# QS=1 / QS=0: the device copy's op hands the Hopper kernels q times scale / 2 (`_pallas.HOPPER_SCALED_Q`, True
# since run 24) or lets them scale the scores themselves; then run41_rows_in_model.sh's steps: `eval kernels` at
# H=64 (fwd+bwd vs cuDNN, dense and 50% padding) and whole steps at 8K tokens (`steps8k.sh`). Run with both values
# on one machine to compare.
#   QS=1 OUT=... K_END=200 END=500 SEQ_LENS=8192,16384 ROUNDS=3 bash docs/probes/run45_qs_in_model.sh   (carry .whl)
if [ -n "$QS" ]; then
  value=$([ "$QS" = 0 ] && echo False || echo True)
  sed -i -E "s/^HOPPER_SCALED_Q = (True|False)$/HOPPER_SCALED_Q = $value/" sigjax/attention/_pallas.py
  grep -c "^HOPPER_SCALED_Q = $value$" sigjax/attention/_pallas.py || exit 1
fi
source docs/probes/run41_rows_in_model.sh
