python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false; nvidia-smi -L
OLD=.whl/hopper_cfcbe26.py OUT=$OUT timeout 220 python3 docs/probes/lean_exit.py > $OUT/lean_exit.log 2>&1
python3 - <<'P'
import json, os, collections
rs=[json.loads(l) for l in open(os.environ['OUT']+'/lean_exit.jsonl')]
d=collections.defaultdict(list)
for r in rs:
    if 'error' in r: print('ERR', r['kind'], r['module'], r['h'], r['t'], r['error'][:300]); continue
    d[(r['h'],r['t'],r['padding'],r['kind'],r['module'])].append(r['time_s']*1e3)
for k in sorted(d):
    if k[4]=='old':
        o=min(d[k]); n=min(d.get(k[:4]+('new',),[float('nan')]))
        print(k[:4], 'old %.3f new %.3f ms new/old %.3f'%(o,n,n/o), d[k], d.get(k[:4]+('new',)))
P
timeout 300 python3 -m pytest -q -rs -p no:cacheprovider -m gpu -n 8 tests/attention/test_hopper.py 2>&1 | tail -15
