"""sigmoid_attention forward+backward with and without XLA's pass over d_out (issue 14).

Since `ac65698` the Hopper backward clears the padded rows of d_out's tiles itself, so the custom
VJP no longer zeroes d_out's padded rows in XLA before it (one read and one write of B·T·N·H 16-bit
values). "pass" puts that pass back (the kernel's own clearing then finds nothing to clear),
"kernel" is the op as it is; both jitted as one forward+backward (jax.vjp with a fixed cotangent),
at the issue's shapes (16,384 tokens, hidden 2048), dense and with `eval kernels`' 50% padding,
alternated over ROUNDS rounds; ORDER=kernel,pass times the op first in each round (on an H100
the variant compiled and timed first ran ~5% faster on dense rows, whichever it was:
docs/benchmarks.md run 20). One JSON line per timing in $OUT/dout_pass.jsonl; a table last:
    OUT=/tmp/out [ORDER=kernel,pass] python docs/probes/dout_pass.py [H:T,...]
"""

import collections
import json
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hopper_bwd as hb  # noqa: E402 (the probe beside this one)

import sigjax  # noqa: E402
from eval.kernels.specs import sequence_lengths  # noqa: E402
from sigjax.attention import _pallas  # noqa: E402
from sigjax.attention._reference import zero_padding  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
LOG = "dout_pass.jsonl"
_kernel_backward = _pallas._hopper_backward


def _with_pass(st, q, k, v, half_bias, d_out, q_lens, kv_lens):
    return _kernel_backward(st, q, k, v, half_bias, zero_padding(d_out, q_lens), q_lens, kv_lens)


def _fwd_bwd(variant):
    """A jitted forward+backward of the op, traced with or without the pass over d_out."""
    _pallas._hopper_backward = _with_pass if variant == "pass" else _kernel_backward

    def run(q, k, v, ct, ql, kl):
        fn = lambda q, k, v: sigjax.sigmoid_attention(  # noqa: E731
            q, k, v, query_seq_lengths=ql, key_value_seq_lengths=kl
        )
        out, vjp = jax.vjp(fn, q, k, v)
        return out, vjp(ct)

    fn = jax.jit(run)
    return fn


def main():
    shapes = sys.argv[1] if len(sys.argv) > 1 else "64:4096,64:8192,128:4096,128:8192"
    for shape in shapes.split(","):
        h, t = map(int, shape.split(":"))
        b, n = 16384 // t, 2048 // h
        for padding in (0.0, 0.5):
            lens = [int(x) for x in sequence_lengths(b, t, padding)]
            q, k, v, ct, ql, kl = hb.inputs(b, t, n, h, lens, lens)
            args = (q, k, v, ct, ql, kl)
            flops = 3.5 * 4 * n * h * sum(x * x for x in lens)
            fns = {}
            order = os.environ.get("ORDER", "pass,kernel").split(",")  # Who goes first.
            for name in order:  # Traced (and compiled) one after the other.
                fns[name] = _fwd_bwd(name)
                jax.block_until_ready(fns[name](*args))
            _pallas._hopper_backward = _kernel_backward
            for r in range(ROUNDS):
                for name, fn in fns.items():
                    rec = dict(variant=name, round=r, h=h, t=t, padding=padding, lens=lens)
                    hb.emit(hb.time_variant(rec, fn, args, flops, "tflops"), LOG)
    times = collections.defaultdict(list)
    with open(os.path.join(hb.OUT, LOG)) as f:
        for line in f:
            r = json.loads(line)
            if "time_s" in r:
                times[(r["h"], r["t"], r["padding"], r["variant"])].append(r["time_s"] * 1e3)
    for key in sorted({k[:3] for k in times}):
        p, kern = sorted(times[key + ("pass",)]), sorted(times[key + ("kernel",)])
        print(key, f"pass {p[0]:.3f} kernel {kern[0]:.3f} ms, kernel/pass {kern[0] / p[0]:.3f}")


if __name__ == "__main__":
    main()
