# Device call (nvidia-h200 or one H100), issue 14, twenty-fifth session. ~200 s.
# The H=64 backward's dq reduce-adds hold it up (run 17's ablation: 8.6% faster without them). Here
# fused_backward(dq_buffers=2): two shared-memory buffers per warpgroup for the dq shares, so a step
# waits for the share of two steps before to have left its buffer. Compiled checks against float32
# XLA gradients, then the backward alone, table variant vs dq_buffers=2, two alternating rounds,
# H=64 and 128, T=4096 and 8192, dense and eval kernels' 50%-padding lengths.
#   OUT=... bash docs/probes/run24_dq_buffers.sh          (carry .whl with .whl/opt; needs the hopper.py of 5e11eac)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/opt/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false; nvidia-smi -L
OUT=$OUT timeout ${T1:-240} python3 -c "
import sys; sys.path.insert(0, 'docs/probes'); import hopper_bwd as hb
from eval.kernels.specs import sequence_lengths
d2 = dict(stages=2, overlap=True, dq_buffers=2)
hb.check(2, 512, 2, 64, [512, 300], [512, 129], d2)
hb.check(2, 512, 2, 64, [512, 300], [400, 512], dict(d2, causal=True, with_dbias=True))
hb.check(2, 512, 2, 128, [512, 300], [400, 512], dict(shared_dq=True, dq_buffers=2, causal=True))
hb.check(1, 1024, 4, 128, [1024], [1024], dict(shared_dq=True, dq_buffers=2))
for r in range(2):
    for h, base in ((64, dict(stages=2, overlap=True)), (128, dict(shared_dq=True))):
        for t in (8192, 4096):
            for pad in (0.0, 0.5):
                lens = [int(x) for x in sequence_lengths(16384 // t, t, pad)]
                hb.timing(h, t, pad, (base, dict(base, dq_buffers=2)), lens, split=False)
" > $OUT/dq_buffers.log 2>&1
python3 -c "import sys; sys.path.insert(0, 'docs/probes'); import hopper_bwd as hb; hb.compare('dq_buffers2')"
