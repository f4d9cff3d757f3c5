"""The Hopper kernels with and without the lean program exit, side by side (issue 14).

The lean exit: a program's last wait for its output copies waits for their reads of shared
memory only (their writes complete with the kernel), the backward's wait before dk and dv reuse
shared memory is read-only too, and programs with nothing to compute (every query, or every key,
of theirs is padding) load no tiles before writing their zeros. Before it, each program waited
for its writes (and the backward for its last dq reduce-add) to reach global memory before it
exited, and programs of padding loaded q (forward) or k, v and the bias (backward).

Run 17 (docs/benchmarks.md) measured both kernels' lean exit with this probe; only the forward's
was kept (the backward's was 1-1.5% slower at H=128 dense), so run now it compares the forward's
lean exit and two identical backwards.

The module before the change is loaded from OLD (a copy of hopper.py as of `cfcbe26`, carried in
the git-ignored .whl/ folder); the current one is the package's. Forward and backward kernels
alone at the table's variants, dense and with 50% padding (`eval kernels`' uneven lengths), at
16,384 tokens and hidden 2048, old and new alternated over ROUNDS rounds. One JSON line per
timing in $OUT/lean_exit.jsonl. ORDER=new,old times the new module first in each round: on an
H100 the variant compiled and timed first ran up to ~5% faster on dense rows, whichever it was
(docs/benchmarks.md run 20), so compare both orders:
    OLD=.whl/hopper_cfcbe26.py OUT=/tmp/out [ORDER=new,old] python docs/probes/lean_exit.py [H:T]
"""

import importlib.util
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hopper_bwd as hb  # noqa: E402 (the probe beside this one)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from eval.kernels.specs import sequence_lengths  # noqa: E402
from pallas_kernels.sigmoid_attention import hopper  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "2"))


def _old_module():
    spec = importlib.util.spec_from_file_location("hopper_old", os.environ["OLD"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _programs(module, h, t, lens):
    b, n = 16384 // t, 2048 // h
    q, k, v, do, ql, kl = hb.inputs(b, t, n, h, lens, lens)
    scale = h**-0.5
    half = 0.5 * -jnp.log(kl.astype(jnp.float32))
    bias = hb.key_bias(t, ql, kl)
    bwd_kw = dict(stages=2, overlap=True) if h == 64 else dict(shared_dq=True)
    fwd = jax.jit(lambda *a: module.fused_forward(*a, scale=scale))
    bwd = jax.jit(lambda *a: module.fused_backward(*a, scale=scale, **bwd_kw))
    flops = 4 * n * h * sum(x * x for x in lens)
    return (
        ("fwd", fwd, (q, k, v, half, ql, kl), flops),
        ("bwd", bwd, (q, k, v, bias, do, ql, kl), 2.5 * flops),
    )


def main():
    shapes = sys.argv[1] if len(sys.argv) > 1 else "64:4096,64:8192,128:4096,128:8192"
    modules = (("old", _old_module()), ("new", hopper))
    if os.environ.get("ORDER") == "new,old":  # Which goes first in each round.
        modules = modules[::-1]
    for shape in shapes.split(","):
        h, t = map(int, shape.split(":"))
        b = 16384 // t
        for padding in (0.0, 0.5):
            lens = [int(x) for x in sequence_lengths(b, t, padding)]
            progs = {name: _programs(m, h, t, lens) for name, m in modules}
            for r in range(ROUNDS):
                for name, _ in modules:
                    for kind, fn, args, flops in progs[name]:
                        rec = dict(kind=kind, module=name, round=r, h=h, t=t, padding=padding)
                        rec.update(lens=lens, at=time.strftime("%H:%M:%S"))
                        hb.emit(hb.time_variant(rec, fn, args, flops, "tflops"), "lean_exit.jsonl")


if __name__ == "__main__":
    main()
