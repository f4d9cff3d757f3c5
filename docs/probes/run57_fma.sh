# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-eighth session. <= 560 s. Part of the
# sigmoids on the FMA units (fused_forward / fused_backward fma_cols) and the backward's lean_exit:
# fma_sigmoid.py, the kernels alone (VARIANTS, default base,fma16,fma32,lean), compiled checks first, rounds
# rotating the order. END: deadline (seconds since the start); SHAPES: H:T list.
#   OUT=... bash docs/probes/run57_fma.sh      (carry .whl)
source docs/probes/device_env.sh
export VARIANTS=${VARIANTS:-base,fma16,fma32,lean}
END=${END:-560}
timeout $(( END - SECONDS )) python3 docs/probes/fma_sigmoid.py ${SHAPES:-64:4096,64:8192,128:8192} \
  $(( END - SECONDS - 90 )) 2>&1 | grep -v -i warn | tail -40
