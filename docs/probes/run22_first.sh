# Device call (nvidia-h200 or one H100), issue 14, 2026-12-06 (twenty-fourth session): the H=64 backward with its
# steps software-pipelined (`fused_backward(pipeline=True)`, KernelConfig.hopper_pipeline), most needed first.
# Seconds since the start; each stage stops at its deadline.
# 1. ptxas reports (registers, spills, wgmma serialisation) of the table's H=64 and H=128 backwards and the pipelined
#    one ($OUT/ptxas/*);
# 2. docs/probes/pipeline_bwd.py: compiled checks of the pipelined backward, then it against the table's variant
#    alone, until P; decision.txt: ADOPT or KEEP;
# 3. with ADOPT, the device copy's table turns hopper_pipeline on at H=64 (this copy only), then `python -m eval
#    kernels` fwd+bwd vs cuDNN at H=64, T=4K-16K, dense and 50% padding (until K), and whole 161.5M steps (until END).
# Ran once (docs/benchmarks.md run 16, call 1; KEEP: the pipelined backward was slower); needs the tree of ad2b19c,
# since the knob was removed after it.
#   bash docs/probes/run22_first.sh         (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__, jax.devices()[0].compute_capability)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
for v in "64 {}" "64 {\"pipeline\":true}" "128 {\"shared_dq\":true}"; do
  name=$(echo "$v" | tr -c 'a-z0-9' '_')
  MOSAIC_GPU_DUMP_PTXAS=1 MOSAIC_GPU_DUMP_TO=$OUT/ptxas/$name timeout 60 python3 docs/probes/ptxas_bwd.py $v \
    > $OUT/ptxas_$name.log 2>&1
  tail -1 $OUT/ptxas_$name.log; grep -h -i -E "registers|spill|serializ" -r $OUT/ptxas/$name $OUT/ptxas_$name.log | sort | uniq | head -8
done
timeout $(left ${P:-260}) python3 docs/probes/pipeline_bwd.py $(( ${P:-260} - SECONDS - 15 )) 2>&1 \
  | grep -v -i warn | grep -E '"kind": "(check|time)"|ADOPT|KEEP|Error' | cut -c1-400
grep -q ADOPT $OUT/decision.txt 2>/dev/null || exit 0
T=pallas_kernels/sigmoid_attention/tuned/default.json python3 -c 'import json, os; p = os.environ["T"]; d = json.load(open(p)); [e["config"].update(hopper_pipeline=True) for e in d["entries"] if (e["head_dim"], e["dtype"]) == (64, "bfloat16")]; json.dump(d, open(p, "w"), indent=1); print("table (this copy): hopper_pipeline on at H=64")'
timeout $(left ${K:-430}) python3 -m eval kernels --out=$OUT/kernels --head_dims=64 --seq_lens=4096,8192,16384 \
  --impls=pallas,cudnn --modes=fwdbwd --memory_impls= --padding=0,0.5 --causal=0 \
  --budget_s=$(( ${K:-430} - SECONDS - 20 )) 2>&1 | grep -v -i warn | tail -10
timeout $(left ${END:-585}) python3 -m eval train-speed --steps=10 --warmup=2 --repeats=3 \
  --config=configs.stress_160m --out=$OUT/speed_s160 2>&1 | grep -v -i warn | tail -4
