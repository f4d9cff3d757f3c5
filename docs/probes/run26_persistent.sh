# Device call (nvidia-h200, or one H100), issue 14, written in the twenty-fifth session, not yet run. ~330 s.
# fused_backward(persistent=SMs): one CTA per SM, each running every SMs-th program (a block of keys), so that the
# memory warpgroup streams the next program's first query tiles while the compute warpgroups store the last one's
# dk and dv (run 17: a program's fixed cost, ~5 query-tile steps, is not in its exit; the prologue is what is left).
# 1. Compiled checks against float32 XLA gradients (H=64 table variant and H=128 shared_dq; dense, padded, causal
#    with a bias gradient).
# 2. The backward alone, table variant vs persistent, two alternated rounds, H=64/128, T=4096/8192/16384, dense and
#    eval kernels' 50%-padding lengths.
# 3. The same for fused_forward(persistent=SMs): checks, then the forward alone (one round; equal lengths).
# 4. lean_exit.py: the table's kernels against cfcbe26's (the restructured default backward must not be slower);
#    needs .whl/hopper_cfcbe26.py (git show cfcbe26:pallas_kernels/sigmoid_attention/hopper.py > .whl/hopper_cfcbe26.py).
#   OUT=... bash docs/probes/run26_persistent.sh          (carry .whl)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false; nvidia-smi -L
OUT=$OUT timeout ${T1:-200} python3 -c "
import sys, jax; sys.path.insert(0, 'docs/probes'); import hopper_bwd as hb
from eval.kernels.specs import sequence_lengths
sms = getattr(jax.devices()[0], 'core_count', None) or 132; print('SMs', sms)
p64 = dict(stages=2, overlap=True, persistent=sms)
p128 = dict(shared_dq=True, persistent=sms)
hb.check(2, 512, 2, 64, [512, 300], [512, 129], p64)
hb.check(2, 512, 2, 64, [512, 300], [400, 512], dict(p64, causal=True, with_dbias=True))
hb.check(2, 512, 2, 128, [512, 300], [400, 512], dict(p128, causal=True))
hb.check(2, 4096, 16, 128, [4096, 1500], [4096, 1500], p128)
hb.check(2, 4096, 32, 64, [4096, 4096], [4096, 4096], p64)
for r in range(2):
    for h, base in ((64, dict(stages=2, overlap=True)), (128, dict(shared_dq=True))):
        for t in (8192, 4096, 16384):
            for pad in (0.0, 0.5):
                lens = [int(x) for x in sequence_lengths(16384 // t, t, pad)]
                hb.timing(h, t, pad, (base, dict(base, persistent=sms)), lens, split=False)
" > $OUT/persistent.log 2>&1
python3 -c "import sys; sys.path.insert(0, 'docs/probes'); import hopper_bwd as hb; hb.compare('persistent')"
tail -3 $OUT/persistent.log
OUT=$OUT timeout ${T3:-120} python3 -c "
import sys, jax; sys.path.insert(0, 'docs/probes'); import hopper_fwd as hf
sms = getattr(jax.devices()[0], 'core_count', None) or 132
hf.check(2, 512, 2, 64, [512, 300], [512, 129], dict(persistent=sms))
hf.check(2, 512, 2, 128, [512, 300], [400, 512], dict(persistent=sms, causal=True, stages=3))
hf.check(2, 4096, 16, 128, [4096, 1500], [4096, 1500], dict(persistent=sms, per_key_bias=True))
for h in (64, 128):
    for t in (4096, 8192):
        for pad in (0.0, 0.5):
            hf.timing(h, t, pad, False, ({}, dict(persistent=sms)))
" > $OUT/persistent_fwd.log 2>&1
python3 -c "import sys; sys.path.insert(0, 'docs/probes'); import hopper_bwd as hb; hb.compare('persistent', 'hopper_fwd.jsonl', 'mosaic')"
OLD=.whl/hopper_cfcbe26.py OUT=$OUT timeout ${T2:-150} python3 docs/probes/lean_exit.py 64:8192,128:8192 > $OUT/lean_exit.log 2>&1
python3 -c "
import json, os, collections
d = collections.defaultdict(list)
for l in open(os.environ['OUT'] + '/lean_exit.jsonl'):
    r = json.loads(l)
    if 'error' not in r: d[(r['h'], r['t'], r['padding'], r['kind'], r['module'])].append(r['time_s'] * 1e3)
for k in sorted(d):
    if k[4] == 'old' and k[:4] + ('new',) in d:
        print(k[:4], 'cfcbe26 %.3f now %.3f ratio %.3f' % (min(d[k]), min(d[k[:4] + ('new',)]), min(d[k[:4] + ('new',)]) / min(d[k])))
"
