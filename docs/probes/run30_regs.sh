# Device call (nvidia-h200, or one H100), issue 14, twenty-seventh session. ~520 s.
# The causal mask from 1-D iotas is in hopper.py now (run 19 call 2: causal backward 2.5% faster at
# H=128, T=4096, spills 412 -> 324 bytes). 1. the compiled Hopper suite (
# tests with the new mask); 2. ptxas reports with the register split 240/24 instead of 232/40
# (REGS, causal_parts.py); 3. both kernels alone at 232/40 and 240/24, causal and not, H=128
# T=4K/8K and H=64 T=8K. Stage deadline TESTS_END (seconds since the start).
# Ran at ad81b10 (run 19, call 3): the REGS passes failed there (the probe's patch then; fixed in aa8056b,
# rerun as run31_regs_only.sh).
#   OUT=... bash docs/probes/run30_regs.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import jax; print(jax.__version__)"
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
timeout $(left ${TESTS_END:-240}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_hopper.py -k "not Interpret" 2>&1 \
  | grep -v -i warn > $OUT/tests.log; tail -4 $OUT/tests.log
for v in "128 {\"shared_dq\":true}" "128 {\"shared_dq\":true,\"causal\":true}" "64 {}"; do
  REGS=240,24 MOSAIC_GPU_DUMP_PTXAS=1 timeout 60 python3 -c "
import sys; sys.path.insert(0, 'docs/probes'); import causal_parts  # patches the register split
sys.argv = [''] + sys.argv[1:]; exec(open('docs/probes/ptxas_bwd.py').read())
" $v > /tmp/p.log 2>&1
  echo "== 240,24 $v"; grep -a -i -E "registers|spill|serializ|finite" /tmp/p.log | cut -c1-200 | sort | uniq | head -6
done 2>&1 | tee $OUT/ptxas_regs.txt
for regs in "" 240,24; do
  for ht in "128 4096" "128 8192" "64 8192"; do
    REGS=$regs timeout 80 python3 docs/probes/causal_parts.py $ht hopper_fwd,hopper_bwd > /dev/null 2>> $OUT/parts.err
  done
done
python3 - <<'PY'
import json, os
rows = [json.loads(l) for l in open(os.path.join(os.environ["OUT"], "causal_parts.jsonl"))]
for r in rows:
    print(r["regs"], r["part"], r["h"], r["t"], "causal" if r["causal"] else "full  ",
          f'{r["time_s"] * 1e3:.3f} ms (min {r["time_min_s"] * 1e3:.3f})' if "time_s" in r else r["error"][:300])
PY
