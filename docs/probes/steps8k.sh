# Whole steps at 8K tokens, dense, sigmoid vs softmax in one process each (`eval train-speed`): the 161.5M config,
# then base with 8 x 8,192 tokens. Sourced by device scripts after their installs, with left() and END defined;
# results under $OUT/speed/.
T="--steps=10 --warmup=2 --repeats=3"
B8K="--config=configs.base --set data.max_len=8192 --set data.batch_size=8 --set data.synthetic.n_genes=12000"
while read name args; do
  timeout $(left ${END:-570}) python3 -m eval train-speed $T $args --out=$OUT/speed/$name 2>&1 | grep -v -i warn | tail -4
done <<LIST
s160_dense --config=configs.stress_160m
base8k_dense $B8K
LIST
