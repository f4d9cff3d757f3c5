# Call 4 (x2): shard_map check on 2 GPUs; then the new H=128 table (GPU0) and compiled default-tile tests (GPU1).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
timeout 50 python3 docs/probes/shardcheck.py > $OUT/shardcheck.log 2>&1; grep -v -i warn $OUT/shardcheck.log | tail -8
(CUDA_VISIBLE_DEVICES=1 timeout 150 python3 -m pytest tests/attention -m gpu -q -p no:cacheprovider -k "default or Compiled and sharded" 2>&1 | tail -6 > $OUT/tests_default.log) &
CUDA_VISIBLE_DEVICES=0 timeout 175 python3 -m eval kernels --memory_seq_lens= --reps=10 --impls=pallas,cudnn --out=$OUT/bench_final --head_dims=128,64 --seq_lens=8192,4096,16384 --padding=0 --causal=0 --budget_s=160 > /tmp/b.log 2>&1
wait; cat $OUT/tests_default.log; tail -25 /tmp/b.log; rm -f $OUT/bench_final/kernels.png
