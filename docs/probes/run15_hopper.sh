# Device call (nvidia-h200), issue 14: the Hopper (Mosaic GPU) fused backward. Carry .whl (with .whl/opt: pytest).
# 1. docs/probes/hopper_bwd.py: compiled correctness, then the backward alone (fused vs split Triton);
# 2. the compiled Hopper tests; 3. `python -m eval kernels` fwd+bwd: pallas, pallas_hopper, cuDNN, dense and 50%
#    padding, when step 1 found the kernel correct. Results under $OUT.
#   END=570 bash docs/probes/run15_hopper.sh
# FWD=1 first runs docs/probes/hopper_fwd.py (the Mosaic GPU forward's variants vs the Triton forward and cuDNN,
# forward alone, FWD_S seconds; $OUT/hopper_fwd.jsonl), e.g.
#   FWD=1 SKIP_PROBE=1 IMPLS=pallas,pallas_mosaic,cudnn MODES=fwd,fwdbwd bash docs/probes/run15_hopper.sh
# Switches: SKIP_PROBE, SKIP_BENCH, TESTS (pytest arguments, run with -m gpu; log in $OUT/tests.log), TESTS_S, IMPLS,
# MODES, HDIMS, SEQS, CAUSAL (e.g. 0,1), CHECKS=0 (the probe's timings only). E.g.
#   SKIP_BENCH=1 TESTS="-n 4 tests/attention/test_hopper.py" TESTS_S=300 bash ...
# (Until 2026-12-05 UNCHECKED=1 routed causal calls and bias gradients to the Hopper kernels; they are the default now.)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
python3 -c "import pytest, hypothesis" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/opt/*.whl
nvidia-smi -L; git rev-parse --short HEAD; python3 -c "import jax; print(jax.__version__, jax.devices()[0].compute_capability)"
probe() {  # probe() SCRIPT SECONDS LOG: run docs/probes/SCRIPT, then a table of its timings.
  timeout $2 python3 docs/probes/$1.py $(( $2 - 50 )) 2>&1 | grep -v -i warn | tee $OUT/$3 \
    | grep -v '^{"kind": "time"' | tail -30
  grep '"kind": "time"' $OUT/$1.jsonl | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    print(r['variant'], r['h'], r['t'], r['padding'], 'causal' if r.get('causal') else '',
          round(r.get('time_s', 0) * 1e3, 3), 'ms', round(r.get('tflops', r.get('tflops_bwd', 0))), 'TF',
          r.get('error', '')[:300])"
}
[ -n "$FWD" ] && probe hopper_fwd ${FWD_S:-240} hopper_fwd_probe.log
[ -z "$SKIP_PROBE" ] && probe hopper_bwd ${PROBE_S:-200} hopper_probe.log
if [ -n "$TESTS" ]; then
  eval "timeout ${TESTS_S:-150} python3 -m pytest -q -rs -p no:cacheprovider -m gpu $TESTS" 2>&1 | tee $OUT/tests.log \
    | tail -15
fi
if [ -z "$SKIP_BENCH" ] && { [ -n "$SKIP_PROBE" ] || grep -q '"ok": true' $OUT/hopper_bwd.jsonl 2>/dev/null; }; then
  timeout $(( ${END:-570} - SECONDS )) python3 -m eval kernels --out=$OUT/kernels --head_dims=${HDIMS:-64,128} \
    --seq_lens=${SEQS:-4096,8192,16384} --impls=${IMPLS:-pallas,pallas_hopper,cudnn} --modes=${MODES:-fwdbwd} --padding=0,0.5 --causal=${CAUSAL:-0} \
    --memory_impls= --budget_s=$(( ${END:-570} - SECONDS - 30 )) 2>&1 | grep -v -i warn | tail -25
fi
