# Device call (nvidia-h200 or one H100), issue 14, twenty-fifth session. ~300 s.
# `python -m eval kernels` at T=4096 and 8192, H=64 and 128: fwd and fwd+bwd vs cuDNN, dense and 50% padding, full
# and causal, with the forward's lean program exit (programs of padding load no q tile; the last output copy is
# waited for its reads only). No peak-memory runs.
#   OUT=... bash docs/probes/run25_table.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
timeout ${END:-380} python3 -m eval kernels --out=$OUT/kernels --head_dims=64,128 --seq_lens=4096,8192 \
  --impls=pallas,cudnn --modes=fwd,fwdbwd --padding=0,0.5 --causal=0,1 --memory_impls=xla \
  --budget_s=$(( ${END:-380} - 30 )) 2>&1 | grep -v -i warn | tail -40
