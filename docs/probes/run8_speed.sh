# Device call (nvidia-h200), issue 14: whole training steps, sigmoid (Pallas) vs softmax (cuDNN), one process per
# setting, both attentions in it: base (~25M) and 161.5M at 8K tokens, dense and with 50% padding, and the
# 161.5M model's remat policies. Carry .whl. Results: $OUT/speed.tgz (runs/speed/*/train_speed.{json,md}).
#   bash docs/probes/run8_speed.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; git rev-parse --short HEAD
T="--steps=10 --warmup=2 --repeats=3"
B8K="--config=configs.base --set data.max_len=8192 --set data.batch_size=8 --set data.synthetic.n_genes=12000"
while read name args; do
  timeout $(( ${END:-570} - SECONDS )) python3 -m eval train-speed $T $args --out=runs/speed/$name 2>&1 \
    | grep -v -i warn | tail -8
  tar czf $OUT/speed.tgz runs/speed
done <<LIST
s160_dense --config=configs.stress_160m
s160_pad50 --config=configs.stress_160m --padding=0.5
base8k_dense $B8K
base8k_pad50 $B8K --padding=0.5
s160_dense_dots --config=configs.stress_160m --set model.remat=dots
s160_dense_full --config=configs.stress_160m --set model.remat=full
LIST
