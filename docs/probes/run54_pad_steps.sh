# Device call (nvidia-h200 wanted, one H100 otherwise), issue 14, thirty-seventh session. ~300 s. Whole steps at
# 8K tokens with 50% padding (cell lengths spread over [0, 8192]) on main's final kernels, not measured since run 21
# (before dq_rows and tanh_ds): 161.5M and base, sigmoid vs softmax in one process each (`eval train-speed`,
# samples alternating), then 161.5M dense again on the same machine. END: deadline (seconds since the start).
#   OUT=... bash docs/probes/run54_pad_steps.sh      (carry .whl)
source docs/probes/device_env.sh
T="--steps=10 --warmup=2 --repeats=3"
B8K="--config=configs.base --set data.max_len=8192 --set data.batch_size=8 --set data.synthetic.n_genes=12000"
while read name args; do
  timeout $(left ${END:-560}) python3 -m eval train-speed $T $args --out=$OUT/speed/$name 2>&1 | grep -v -i warn | tail -4
done <<LIST
s160_pad50 --config=configs.stress_160m --padding=0.5
base8k_pad50 $B8K --padding=0.5
s160_dense --config=configs.stress_160m
LIST
