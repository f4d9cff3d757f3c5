# Device call (nvidia-h200), issue 14, 2026-12-05 (eighteenth session): one dq share per program at H=64.
# 1. docs/probes/hopper_bwd.py timings only (CHECKS=0, until P seconds): the H=64 backward with shared_dq (64-byte
#    swizzled tiles) vs without, dense and with `eval kernels`' uneven 50% padding; 2. if shared_dq is >= 3% faster
#    at H=64, T=8192, it is switched on in this copy's table (tuned/default.json; decision in $OUT/decision.txt);
# 3. `python -m eval kernels` fwd+bwd, H=64 vs cuDNN (dense, 50% padding), then causal vs not at T=8192 (until K);
# 4. whole steps (161.5M and base at 8K tokens, dense) with that table (until S); 5. the compiled kernel suite
#    (tests/attention/test_sigmoid_attention.py -m gpu; causal calls and bias gradients now take the Hopper kernels)
#    until END, unless TESTS=0; before them (added 2026-12-05, twentieth session) a profile of the 161.5M step by op
#    (docs/probes/step_profile.py, sigmoid and softmax, until PR; $OUT/step_profile.jsonl). Each stage stops at its
#    deadline (seconds since the start). KSEQS: the H=64 lengths of stage 3.
#   bash docs/probes/run16_h64.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices()[0].compute_capability)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
CHECKS=0 timeout $(left ${P:-130}) python3 docs/probes/hopper_bwd.py $(( ${P:-130} - SECONDS - 25 )) 2>&1 \
  | grep -v -i warn | grep -v '"kind": "time"' | tail -5
python3 docs/probes/shared_dq_decision.py | tee $OUT/decision.txt
K_ARGS="--modes=fwdbwd --memory_impls= --padding=0,0.5"
timeout $(left ${K:-290}) python3 -m eval kernels --out=$OUT/kernels_h64 --head_dims=64 --seq_lens=${KSEQS:-4096,8192,16384} \
  --impls=pallas,cudnn $K_ARGS --causal=0 --budget_s=$(( ${K:-290} - SECONDS - 75 )) 2>&1 | grep -v -i warn | tail -8
timeout $(left ${K:-290}) python3 -m eval kernels --out=$OUT/kernels_causal --head_dims=64,128 --seq_lens=8192 \
  --impls=pallas --modes=fwdbwd --memory_impls= --padding=0 --causal=0,1 --budget_s=$(( ${K:-290} - SECONDS - 10 )) 2>&1 \
  | grep -v -i warn | tail -8
T="--steps=10 --warmup=2 --repeats=3"
B8K="--config=configs.base --set data.max_len=8192 --set data.batch_size=8 --set data.synthetic.n_genes=12000"
while read name args; do
  timeout $(left ${S:-440}) python3 -m eval train-speed $T $args --out=runs/speed/$name 2>&1 | grep -v -i warn | tail -4
  tar czf $OUT/speed.tgz runs/speed
done <<LIST
s160_dense --config=configs.stress_160m
base8k_dense $B8K
LIST
timeout $(left ${PR:-585}) python3 docs/probes/step_profile.py --config=configs/stress_160m.py --steps=5 --top=40 \
  --attentions=sigmoid,softmax --hlo_dir=$OUT/hlo 2>&1 | grep -v -i warn | tee $OUT/step_profile.jsonl | grep wall_s
[ "${TESTS:-1}" = 0 ] || timeout $(left ${END:-585}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 4 \
  tests/attention/test_sigmoid_attention.py 2>&1 | tee $OUT/tests.log | tail -6
