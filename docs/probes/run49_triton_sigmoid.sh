# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-fourth session. <= 590 s.
# The paper's kernel (PyPI triton-sigmoid, torch) beside sigjax's current kernels and cuDNN softmax, in one
# `eval kernels` run: H=128 and 64, T=8192, 16384, 4096, fwd and fwd+bwd, dense and 50% padding (TritonSigmoid's
# padded entry point with the same lengths). Last measured against TritonSigmoid in run 6 (the Triton kernels of
# 2026-11-28). TritonSigmoid runs first, in its own subprocess, within its budget share.
#   OUT=... bash docs/probes/run49_triton_sigmoid.sh     (carry .whl with triton_sigmoid-0.1.2-py3-none-any.whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L | tee $OUT/gpu.txt
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
END=${END:-570}
timeout $(left $END) python3 -m eval kernels --out=$OUT/kernels --head_dims=${HDIMS:-128,64} \
  --seq_lens=${SEQ_LENS:-8192,16384,4096} --impls=pallas,cudnn,triton_sigmoid --modes=fwd,fwdbwd \
  --padding=${PADDING:-0,0.5} --causal=0 --memory_impls= --rounds=${ROUNDS:-2} --triton_share=${SHARE:-0.35} \
  --budget_s=$(left $(( END - 20 ))) 2>&1 | grep -v -i warn | tail -40
find $OUT -name '*.png' -delete  # The device tool returns at most 8 files.
