# Device call (two chained on one machine), issue 14, thirty-seventh session. <= 580 s each. The table on
# main's final kernels (unchanged since b72dab0) in one machine's runs, order-neutral (4 rounds, sigjax leading
# rounds 1 and 3): PART=dense: fwd and fwd+bwd vs cuDNN, H=128 and 64, T=4096/8192/16384, causal and not;
# PART=padded: the same with 50% padding, non-causal. END: the stage's deadline (seconds since the start).
#   OUT=... PART=dense bash docs/probes/run53_table.sh ; then PART=padded      (carry .whl)
source docs/probes/device_env.sh
END=${END:-570}
if [ "$PART" = padded ]; then ARGS="--padding=0.5 --causal=0"; else ARGS="--padding=0 --causal=0,1"; fi
timeout $(left $END) python3 -m eval kernels --out=$OUT/$PART --head_dims=128,64 --seq_lens=4096,8192,16384 \
  --impls=pallas,cudnn --modes=fwd,fwdbwd $ARGS --memory_impls= --rounds=4 \
  --budget_s=$(left $(( END - 12 ))) 2>&1 | grep -v -i warn | tail -16
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
