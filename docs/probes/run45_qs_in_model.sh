# Device call (nvidia-h200, or one H100), issue 14, thirty-second session. ~400 s.
# `qs_in_model.py`: the op (fwd+bwd vs cuDNN, H=64, T=8K/16K, dense and 50% padding) and whole training steps at 8K
# tokens (161.5M, base) with the Hopper kernels taking q times scale / 2 (`_pallas.HOPPER_SCALED_Q`) and without, in
# one process, the variants' order rotating. Deadline END; the steps get the last STEP_S seconds.
#   OUT=... bash docs/probes/run45_qs_in_model.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L
STEP_S=${STEP_S:-230} OUT=$OUT timeout $(( ${END:-400} - SECONDS )) python3 docs/probes/qs_in_model.py $(( ${END:-400} - SECONDS - 10 )) 2>&1 \
  | grep -v -i warn | grep -v "^{" | cut -c1-300 | tail -16
