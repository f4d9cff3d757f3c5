# Device call (nvidia-h200-x2), issue 14, 2026-12-05 (nineteenth session): the Hopper kernels per shard on 2 GPUs.
# 1. docs/probes/shard_hopper.py: fwd+bwd at the base model's 8K shape, Hopper vs Triton kernels, 1 GPU vs a batch
#    split over 2 (times, kernels in the program, 2-GPU results vs 1-GPU); 2. the compiled sharded Hopper tests;
# 3. 2-GPU data-parallel training steps at 8K tokens (docs/scaling.md's g2_data, 30 steps) and 1 GPU's, for the
#    throughput table (there with the Triton kernels, commit 5579d18). Stage deadlines: A, B, END seconds.
#   bash docs/probes/run17_two_gpus.sh      (kind nvidia-h200-x2; carry .whl with .whl/opt: pytest)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices())"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${A:-200}) python3 docs/probes/shard_hopper.py 2>&1 | grep -v -i warn | tail -6
timeout $(left ${B:-330}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu tests/attention/test_hopper.py \
  -k "sharded or one_device" 2>&1 | tee $OUT/tests.log | tail -6
K="--config=configs/base.py --config.data.max_len=8192 --config.data.synthetic.min_genes=7000
   --config.data.synthetic.max_genes=8191 --config.data.synthetic.n_genes=12000 --config.data.synthetic.n_cells=600
   --config.train.log_every=1 --config.train.checkpoint_every=1000 --config.data.batch_size=8 --config.train.num_steps=30"
for run in g2_data g1; do
  extra="--config.mesh.data=2"; [ $run = g1 ] && extra="" && export CUDA_VISIBLE_DEVICES=0
  timeout $(left ${END:-585}) python3 -m train $K $extra --workdir=/tmp/$run 2>&1 | grep -v -i warn | tail -2
  cp /tmp/$run/metrics.jsonl $OUT/${run}_metrics.jsonl
done
