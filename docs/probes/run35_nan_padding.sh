# Device call (nvidia-h200, or one H100), issue 14, twenty-eighth session. ~560 s.
# The Hopper kernels clear the padded rows of the tiles holding the last valid query or key in shared
# memory (NaN in padding reached valid outputs and gradients before; tests/attention/test_hopper.py,
# test_nan_in_padding_reaches_no_valid_output_or_gradient). 1. ptxas reports of the backward (H=128
# shared_dq, with and without causal; H=64) and the forward; 2. the compiled Hopper suite; 3. kernels alone, this tree
# against 68b614f's hopper.py (OLD, carried in .whl/), dense and 50% padding, via lean_exit.py (any
# old-vs-new pair of hopper.py). Stage deadlines in seconds since the start: TESTS_END, END.
#   OUT=... bash docs/probes/run35_nan_padding.sh          (carry .whl with .whl/opt: pytest, pytest-xdist)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L
left() { local n=$(( $1 - SECONDS )); echo $(( n > 1 ? n : 1 )); }
for v in "bwd 128 {\"shared_dq\":true}" "bwd 128 {\"shared_dq\":true,\"causal\":true}" "bwd 64 {}" "fwd 128 {}" \
         "fwd 128 {\"causal\":true}" "fwd 64 {}"; do
  set -- $v; MOSAIC_GPU_DUMP_PTXAS=1 timeout 60 python3 docs/probes/ptxas_$1.py $2 $3 > /tmp/p.log 2>&1
  echo "== $v"; grep -a -i -E "registers|spill|serializ|finite" /tmp/p.log | cut -c1-220 | sort | uniq | head -6
done > $OUT/ptxas.txt; cat $OUT/ptxas.txt
timeout $(left ${TESTS_END:-280}) python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 \
  tests/attention/test_hopper.py -k "not Interpret" 2>&1 | grep -v -i warn > $OUT/tests.log; tail -4 $OUT/tests.log
ROUNDS=${ROUNDS:-3} OLD=.whl/hopper_68b614f.py OUT=$OUT timeout $(left ${END:-570}) python3 docs/probes/lean_exit.py > /dev/null 2>&1
python3 - <<'P' | tee $OUT/ab.txt
import json, os, collections
rs = [json.loads(l) for l in open(os.environ['OUT'] + '/lean_exit.jsonl')]
d = collections.defaultdict(list)
for r in rs:
    if 'error' in r: print('ERR', r['kind'], r['module'], r['h'], r['t'], r['error'][:300]); continue
    d[(r['h'], r['t'], r['padding'], r['kind'], r['module'])].append(r['time_s'] * 1e3)
for k in sorted(d):
    if k[4] == 'old':
        o = min(d[k]); n = min(d.get(k[:4] + ('new',), [float('nan')]))
        print(k[:4], 'old %.3f new %.3f ms new/old %.3f' % (o, n, n / o), 'median %.3f' % (sorted(d[k[:4] + ('new',)])[1] / sorted(d[k])[1]), d[k], d.get(k[:4] + ('new',)))
P
