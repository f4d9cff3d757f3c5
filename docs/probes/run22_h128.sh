# Device call (nvidia-h200 or one H100), issue 14, written in the twenty-fourth session, not yet run (the session's
# device time ran out). ~250 s.
# 1. The H=128 table backward (shared_dq, overlap, 2 stages) spills 144 bytes of registers (ptxas, docs/benchmarks.md
#    run 16): ptxas reports of the other H=128 variants (dv's product after ds^T, `dv_after_ds`; overlap off; 3
#    stages; no shared_dq) and of H=64 with 3 stages; compiled checks of dv_after_ds against float32 XLA gradients;
#    then the backward alone at H=128, T=8192 and 16384 dense, to see whether a variant without the spill is faster.
# 2. docs/probes/bwd_ablation.py: the table's backward at H=64 and 128 with the sigmoid's tanh, the dq reduce-adds,
#    or both taken out, to see which work holds the kernel up.
#   bash docs/probes/run22_h128.sh          (carry .whl with .whl/opt)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false; nvidia-smi -L
for v in "128 {\"shared_dq\":true,\"dv_after_ds\":true}" "128 {\"shared_dq\":true,\"overlap\":false}" \
  "128 {\"shared_dq\":true,\"stages\":3}" "128 {}" "64 {\"stages\":3}"; do
  name=$(echo "$v" | tr -c 'a-z0-9' '_'); MOSAIC_GPU_DUMP_PTXAS=1 timeout 60 python3 docs/probes/ptxas_bwd.py $v > /tmp/p_$name.log 2>&1
  echo "== $v"; grep -a -i -E "registers|spill|serializ|injected" /tmp/p_$name.log | cut -c1-220 | sort | uniq | head -6
done
OUT=$OUT timeout 200 python3 -c "
import sys; sys.path.insert(0, 'docs/probes'); import hopper_bwd as hb
s = dict(stages=2, overlap=True, shared_dq=True)
d = dict(s, dv_after_ds=True)
hb.check(2, 512, 2, 128, [512, 300], [512, 129], d)
hb.check(2, 512, 2, 128, [512, 300], [400, 512], dict(d, causal=True, with_dbias=True))
hb.check(1, 1024, 4, 64, [1024], [1024], dict(stages=2, overlap=True, dv_after_ds=True))
hb.timing(128, 8192, 0.0, (s, d, dict(s, overlap=False), dict(s, stages=3)), None, split=False)
hb.timing(128, 16384, 0.0, (s, d, dict(s, overlap=False)), None, split=False)
" 2>&1 | grep '"kind": "' | python3 -c "
import sys, json
for l in sys.stdin:
    r = json.loads(l)
    if r['kind'] == 'check':
        print('check', r.get('variant'), r.get('rel_err'), r.get('ok'), r.get('error', ''))
    else:
        print(r['variant'], r['t'], round(r.get('time_s', 0) * 1e3, 3), 'ms', round(r.get('tflops_bwd', 0)), r.get('error', ''))"
for a in stock no_tanh no_dq_add both; do
  OUT=$OUT timeout 60 python3 docs/probes/bwd_ablation.py $a 2>&1 | grep '"ablation"' | python3 -c "
import sys, json
for l in sys.stdin:
    r = json.loads(l); print(r['ablation'], r['h'], round(r.get('time_s', 0) * 1e3, 3), 'ms', round(r.get('tflops', 0)), r.get('error', ''))"
done
