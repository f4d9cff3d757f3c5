"""Hopper (Mosaic GPU) forward variants vs the Triton forward and cuDNN softmax, forward alone.

`hopper.fused_forward` (off in every table until measured: KernelConfig.hopper_fwd) has knobs no
benchmark row sets: `pingpong` (the two compute warpgroups take turns on the tensor cores),
`stages` (depth of the k/v ring), `block_k`, and the bias path (one scalar per sequence with
padded keys masked by length, the default; or a per-key bias vector streamed with k). This probe
checks each compiled variant against float32 XLA (padding, causal), then times the forward alone
at the issue's shapes (16,384 tokens, hidden 2048) beside the Triton forward (table configuration)
and cuDNN's softmax forward, all in this one process. One JSON line per result in
$OUT/hopper_fwd.jsonl, a table last. Run on the GPU from the repository root:
    OUT=/tmp/out python docs/probes/hopper_fwd.py [seconds]
"""

import functools
import os
import sys
import time
import traceback

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hopper_bwd import emit as _emit  # noqa: E402
from hopper_bwd import inputs, key_bias, scaled_q, time_variant  # noqa: E402

from eval.kernels import peers  # noqa: E402
from pallas_kernels import sigmoid_attention as kernels  # noqa: E402
from pallas_kernels.sigmoid_attention import hopper  # noqa: E402
from sigjax.attention._reference import sigmoid_attention_xla  # noqa: E402

emit = functools.partial(_emit, log="hopper_fwd.jsonl")


def _name(variant):
    return "_".join(["mosaic"] + [f"{a}{int(b)}" for a, b in sorted(variant.items())])


def _fused(q, k, v, ql, kl, *, scale, causal, per_key_bias=False, **variant):
    half = 0.5 * -jnp.log(kl.astype(jnp.float32))
    hb = key_bias(k.shape[1], ql, kl) if per_key_bias else half
    return hopper.fused_forward(q, k, v, hb, ql, kl, scale=scale, causal=causal, **variant)


def check(b, t, n, h, q_lens, kv_lens, variant):
    q, k, v, _, ql, kl = inputs(b, t, n, h, q_lens, kv_lens)
    scale = h**-0.5
    variant = dict(variant)
    causal = variant.pop("causal", False)
    sb = -jnp.log(kl.astype(jnp.float32))
    f32 = lambda x: x.astype(jnp.float32)  # noqa: E731
    ref = sigmoid_attention_xla(
        f32(q), f32(k), f32(v), None, sb, ql, kl, scale=scale, is_causal=causal
    )
    fn = jax.jit(functools.partial(_fused, scale=scale, causal=causal, **variant))
    got = fn(scaled_q(q, variant, scale), k, v, ql, kl)
    rows = (jnp.arange(t)[None, :] < ql[:, None])[:, :, None, None]
    err = float(jnp.max(jnp.abs(jnp.where(rows, f32(got), 0) - ref)) / jnp.max(jnp.abs(ref)))
    rec = dict(kind="check", b=b, t=t, n=n, h=h, q_lens=list(q_lens), kv_lens=list(kv_lens))
    emit(dict(rec, variant=dict(variant, causal=causal), rel_err=err, ok=err < 2e-2))


def timing(h, t, padding, causal, variants):
    b, n = 16384 // t, 2048 // h
    lens = [t] * b if not padding else [int(t * (1 - padding))] * b
    q, k, v, _, ql, kl = inputs(b, t, n, h, lens, lens)
    scale = h**-0.5
    flops = 4 * n * h * sum(x * x for x in lens) / (2 if causal else 1)
    config = kernels.default_config(h, "bfloat16", t, jax.devices()[0].device_kind)
    half = (0.5 * -jnp.log(kl.astype(jnp.float32))).astype(jnp.float32)
    kw = dict(scale=scale, is_causal=causal, config=config, approx_sigmoid=True, interpret=False)
    padded = dict(query_seq_lengths=ql, key_value_seq_lengths=kl) if padding else {}
    runs = [
        ("triton", jax.jit(lambda q, k, v: kernels.forward(q, k, v, half, ql, kl, **kw))),
        (
            "cudnn",
            jax.jit(lambda q, k, v: peers.cudnn_softmax(q, k, v, is_causal=causal, **padded)),
        ),
    ]
    for variant in variants:
        fn = functools.partial(_fused, ql=ql, kl=kl, scale=scale, causal=causal, **variant)
        runs.append((_name(variant), jax.jit(fn)))
    by_name = {_name(variant): variant for variant in variants}
    for name, fn in runs:
        rec = dict(kind="time", variant=name, h=h, t=t, b=b, n=n, padding=padding, causal=causal)
        q_in = scaled_q(q, by_name.get(name, {}), scale)  # Outside the timed call.
        emit(time_variant(rec, fn, (q_in, k, v), flops, "tflops"))


def main():
    emit(dict(kind="meta", jax=jax.__version__, device=str(jax.devices()[0].device_kind)))
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 240)
    for args in [
        (2, 512, 2, 128, [512, 300], [512, 129], {}),
        (2, 512, 2, 64, [512, 300], [400, 512], dict(causal=True)),
        (2, 384, 3, 64, [1, 384], [200, 384], dict(pingpong=False, stages=3)),
        (2, 512, 2, 128, [512, 300], [512, 129], dict(per_key_bias=True, causal=True)),
        (1, 1024, 4, 128, [1024], [1024], dict(block_k=64, stages=3)),
    ]:
        try:
            check(*args)
        except Exception as e:
            emit(dict(kind="check", args=str(args), error=f"{type(e).__name__}: {e}"[:3000]))
            traceback.print_exc()
    base, no_pp = {}, dict(pingpong=False)
    grid = [
        (128, 8192, 0.0, False, (base, no_pp, dict(stages=3), dict(per_key_bias=True))),
        (64, 8192, 0.0, False, (base, no_pp, dict(stages=3), dict(block_k=64, stages=4))),
        (128, 4096, 0.0, False, (base,)),
        (128, 16384, 0.0, False, (base,)),
        (128, 8192, 0.5, False, (base,)),
        (128, 8192, 0.0, True, (base,)),
        (64, 8192, 0.5, False, (base,)),
        (64, 8192, 0.0, True, (base,)),
    ]
    for h, t, pad, causal, variants in grid:
        if time.time() > deadline:
            break
        timing(h, t, pad, causal, variants)


if __name__ == "__main__":
    main()
