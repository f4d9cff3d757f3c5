# Call 1 (nvidia-h200-x2): GPU1 = compiled kernel tests + benchmark; GPU0 = levers + LR sweep.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L; git log --oneline -1 2>/dev/null; date -u
B=python3; KB="-m eval kernels --memory_seq_lens= --reps=10 --impls=pallas,cudnn,triton_sigmoid"
(
  export CUDA_VISIBLE_DEVICES=1
  timeout 250 $B -m pytest tests/attention -m gpu -q -p no:cacheprovider 2>&1 | tail -25 > $OUT/tests.log
  timeout 185 $B $KB --out=$OUT/bench_dense --head_dims=128,64 --seq_lens=4096,8192,16384,1024 --padding=0 --causal=0 --triton_share=0.3 --budget_s=170 > /tmp/bench1.log 2>&1
  timeout 150 $B $KB --out=$OUT/bench_pc --head_dims=128,64 --seq_lens=4096,8192 --padding=0.5 --causal=0,1 --modes=fwd,fwdbwd --triton_share=0 --budget_s=135 > /tmp/bench2.log 2>&1
  timeout 60 $B $KB --out=/tmp/bench_c --head_dims=128,64 --seq_lens=8192 --padding=0 --causal=1 --triton_share=0 --budget_s=50 > /tmp/bench3.log 2>&1
  cp /tmp/bench_c/kernels.json $OUT/bench_pc/kernels_causal_dense.json
) &
(
  export CUDA_VISIBLE_DEVICES=0
  LEVERS_BUDGET=270 timeout 300 $B docs/probes/levers.py > /tmp/levers.log 2>&1
  export XLA_PYTHON_CLIENT_MEM_FRACTION=0.1
  for A in sigmoid softmax; do for LR in 1e-3 3e-3 1e-2 3e-2; do
    timeout 230 $B -m train --config=configs/stress_small.py --workdir=/tmp/sweep/${A}_$LR --config.model.attention=$A --config.train.learning_rate=$LR --config.train.progress_bar=False > /tmp/sweep_${A}_$LR.log 2>&1 &
  done; done
  wait
  for d in /tmp/sweep/*; do tail -3 /tmp/sweep_$(basename $d).log | sed "s|^|$(basename $d): |"; done > /tmp/sweep_tail.log
  (cd /tmp && tar czf $OUT/sweep.tgz sweep/*/metrics.jsonl sweep_tail.log)
) &
wait
{ echo "== tests"; cat $OUT/tests.log; echo "== levers"; grep -v '^{' /tmp/levers.log | grep -iv warn | tail -20; echo "== bench"; tail -40 /tmp/bench1.log; tail -30 /tmp/bench2.log; tail -12 /tmp/bench3.log; echo "== sweep"; cat /tmp/sweep_tail.log; } > $OUT/logs.txt 2>&1
rm -f $OUT/tests.log $OUT/bench_pc/kernels.png $OUT/bench_pc/kernels.md
ls -R $OUT | head -30; tail -60 $OUT/logs.txt
