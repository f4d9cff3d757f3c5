# Device call (nvidia-h200, or one H100), issue 14, written in the twenty-sixth session, not yet run. ~200 s.
# Run 18 (H200): causal fwd+bwd took 0.65x the full time at H=128, T=4096 (bar <= 0.6), and the backward alone
# (fwd+bwd minus fwd) kept 0.64-0.69 of its full time there, against cuDNN's 0.61 and 0.54-0.57 from a
# list-scheduling model of the programs (docs/benchmarks.md run 18); at H=64 it kept 0.59-0.60, near the model.
# Suspect: the masked loop body (a causal program's diagonal query tiles, its own pl.loop) needs more registers
# at H=128, where the unmasked body already spills 144 bytes. 1. ptxas reports of the backward with and without
# causal at H=128 (shared_dq) and H=64; 2. the backward alone, causal vs full, H=64/128, T=4096/8192, dense.
#   OUT=... bash docs/probes/run28_causal.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false; nvidia-smi -L
for v in "128 {\"shared_dq\":true}" "128 {\"shared_dq\":true,\"causal\":true}" "128 {\"causal\":true}" "64 {}" "64 {\"causal\":true}"; do
  name=$(echo "$v" | tr -c 'a-z0-9' '_'); MOSAIC_GPU_DUMP_PTXAS=1 timeout 60 python3 docs/probes/ptxas_bwd.py $v > /tmp/p_$name.log 2>&1
  echo "== $v"; grep -a -i -E "registers|spill|serializ|injected|finite" /tmp/p_$name.log | cut -c1-220 | sort | uniq | head -8
done | tee $OUT/ptxas.txt
OUT=$OUT timeout ${T1:-150} python3 -c "
import sys; sys.path.insert(0, 'docs/probes'); import hopper_bwd as hb
for h, base in ((128, dict(shared_dq=True)), (64, dict(stages=2, overlap=True))):
    for t in (4096, 8192):
        extra = (dict(stages=2), dict(stages=2, causal=True)) if h == 128 and t == 4096 else ()
        hb.timing(h, t, 0.0, (base, dict(base, causal=True)) + extra, None, split=False)
" > $OUT/causal.log 2>&1
python3 -c "import sys; sys.path.insert(0, 'docs/probes'); import hopper_bwd as hb; hb.compare('causal')"
