# Call 2 (nvidia-h200-x2): stress_160m, sigmoid on GPU0 and softmax on GPU1 at the same time. Args: LR STEPS
LR=${1:-1e-3}; STEPS=${2:-1000}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
date -u; i=0
for A in sigmoid softmax; do
  CUDA_VISIBLE_DEVICES=$i timeout 520 python3 -m train --config=configs/stress_160m.py --workdir=/tmp/runs/stress_$A --config.model.attention=$A --config.train.learning_rate=$LR --config.train.num_steps=$STEPS --config.train.checkpoint_every=100000 --config.train.progress_bar=False > /tmp/stress_$A.log 2>&1 &
  i=$((i+1))
done
wait
for A in sigmoid softmax; do cp /tmp/runs/stress_$A/metrics.jsonl $OUT/stress160_${A}_lr$LR.jsonl; echo "== $A"; grep -v -i "warn" /tmp/stress_$A.log | tail -8; done | tee $OUT/stress_logs.txt
