# Device call (nvidia-h200, or one H100), issue 14, twenty-seventh session. ~250 s.
# Run 19 call 1 (H100, run28_causal.sh): the Hopper backward alone, causal / full, is 0.58 at H=128,
# T=4096 (0.56 at H=64), while run 18's fwd+bwd row on the H200 was 0.65; and the causal backward
# at H=128 spills 412 bytes (144 without causal). 1. causal_parts.py: sigjax's fwd+bwd, cuDNN's and
# the two kernels alone, causal and not, one process, with the 2-D iota mask of main and with
# the mask from 1-D vectors; 2. ptxas report and compiled checks of the vector mask.
# Ran once, at 6e7b2c5 (docs/benchmarks.md run 19, call 2). Since then the 1-D mask is hopper._mask and
# causal_parts.py has no MASK switch: both passes now time main's kernels.
#   OUT=... bash docs/probes/run29_causal_parts.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false; nvidia-smi -L
for m in iota2d vectors; do MASK=$m timeout 150 python3 docs/probes/causal_parts.py 128 4096 > $OUT/parts_$m.log 2>&1; done
MASK=vectors MOSAIC_GPU_DUMP_PTXAS=1 timeout 60 python3 -c "
import sys; sys.path.insert(0, 'docs/probes'); import causal_parts  # patches the mask
sys.argv = ['', '128', '{\"shared_dq\": true, \"causal\": true}']; exec(open('docs/probes/ptxas_bwd.py').read())
" > /tmp/p_vec.log 2>&1
grep -a -i -E "registers|spill|serializ|injected|finite" /tmp/p_vec.log | cut -c1-220 | sort | uniq | head -8 | tee $OUT/ptxas_vectors.txt
MASK=vectors OUT=$OUT timeout 90 python3 -c "
import sys; sys.path.insert(0, 'docs/probes'); import causal_parts, hopper_bwd as hb
for h, kw in ((128, dict(shared_dq=True, causal=True)), (64, dict(causal=True))):
    hb.check(2, 1024, 2, h, [1024, 700], [1024, 700], kw)
" > $OUT/check_vectors.log 2>&1
grep -h '"check"' $OUT/hopper_bwd.jsonl | cut -c1-300
python3 - <<'PY'
import json, os
rows = [json.loads(l) for l in open(os.path.join(os.environ["OUT"], "causal_parts.jsonl"))]
t = {(r["mask"], r["part"], r["causal"]): r.get("time_s", float("nan")) * 1e3 for r in rows}
for m in ("iota2d", "vectors"):
    for p in ("sigjax_fwdbwd", "cudnn_fwdbwd", "hopper_fwd", "hopper_bwd"):
        full, cz = t.get((m, p, False), float("nan")), t.get((m, p, True), float("nan"))
        print(f"{m:8s} {p:14s} full {full:.3f} causal {cz:.3f} ms ratio {cz / full:.3f}")
    glue = [t.get((m, "sigjax_fwdbwd", c), 0) - t.get((m, "hopper_fwd", c), 0) - t.get((m, "hopper_bwd", c), 0) for c in (False, True)]
    print(m, "glue (fwdbwd - kernels) ms", [round(g, 3) for g in glue])
PY
