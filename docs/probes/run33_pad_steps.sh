# Device call (nvidia-h200, or one H100), issue 14, twenty-seventh session. ~400 s.
# Same tree as run32_table.sh: 1. `eval kernels` fwd+bwd with 50% padding vs cuDNN, H=64/128,
# T=4096/8192; 2. whole steps of configs/stress_160m.py (161.5M, 8K tokens), sigmoid vs softmax in
# one process. Stage deadlines in seconds since the start: KERNELS_END, END.
#   OUT=... bash docs/probes/run33_pad_steps.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${KERNELS_END:-200}) python3 -m eval kernels --out=$OUT/kernels --head_dims=128,64 --seq_lens=4096,8192 \
  --impls=pallas,cudnn --modes=fwdbwd --padding=0.5 --causal=0 --memory_impls= \
  --budget_s=$(left $(( ${KERNELS_END:-200} - 15 ))) 2>&1 | grep -v -i warn | tail -8
timeout $(left ${END:-420}) python3 -m eval train-speed --steps=10 --warmup=2 --repeats=3 \
  --config=configs.stress_160m --out=$OUT/speed/s160_dense 2>&1 | grep -v -i warn | tail -4
