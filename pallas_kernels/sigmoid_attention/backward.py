"""Backward kernels. Scores are recomputed tile by tile; no [T, S] matrix is ever stored.

With p = sigmoid(s) and out = p v:  dv = p^T do,  dp = do v^T,  ds = dp * p * (1 - p),
dq = scale ds k,  dk = scale ds^T q,  and d(bias_j) = sum_i ds_ij.
With the approximate sigmoid (tanh.approx, the default on GPUs) both kernels take ds from
w = tanh(logit / 2) = 2 p - 1 as dp (1 - w^2) = 4 ds (`tanh_ds`, as the Hopper backward since
docs/benchmarks.md run 23): two operations per element instead of three (in the dQ kernel p is
not formed at all), the 1/4 folded into the final scaling of dq, dk and the bias gradient. On one
H100 (run 24, T=8192, the table's tiles) the split backward took 0.977-0.986x the time with it at
H=64 and H=128, dense and 50% padding, with the same errors against float32 XLA.
By default two kernels, neither with atomics: dQ loops over key blocks per query block, dK/dV over
query blocks per key block, each recomputing the scores. With `KernelConfig.fused_bwd` the
dK/dV kernel also adds each tile's dQ share into a float32 buffer with atomic adds, and the dQ
kernel is not run: 5 tile products per tile pair instead of 7, but measured 0.5x the split
backward on an H200 (docs/benchmarks.md run 8: the element-wise float32 atomics cost more than the
two products saved; starting each key block at its own query block, to spread the atomics over
different tiles, changed nothing at equal tiles).
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from pallas_kernels.sigmoid_attention import _common
from pallas_kernels.sigmoid_attention.config import KernelConfig


def _dq_kernel(
    q_ref,
    k_ref,
    v_ref,
    bias_ref,
    do_ref,
    q_len_ref,
    kv_len_ref,
    dq_ref,
    *,
    scale: float,
    block_q: int,
    block_k: int,
    is_causal: bool,
    approx: bool,
    per_key: bool,
    tanh_ds: bool,
):
    q_start = pl.program_id(0) * block_q
    q_len = q_len_ref[0]
    kv_len = kv_len_ref[0]
    q = q_ref[...]
    do = do_ref[...]
    q_idx = (q_start + jnp.arange(block_q, dtype=jnp.int32))[:, None]

    def body(j, acc, masked):
        k_start = j * block_k
        k = k_ref[pl.ds(k_start, block_k), :]
        v = v_ref[pl.ds(k_start, block_k), :]
        b = _common.load_bias(bias_ref, k_start, block_k, per_key)
        x = _common.dot(q, k, trans_b=True) * (0.5 * scale) + (b[None, :] if per_key else b)
        w = _weights(x, approx, tanh_ds)
        ds = _common.weight_grad(_common.dot(do, v, trans_b=True), w, tanh_ds)
        if masked:
            k_idx = (k_start + jnp.arange(block_k, dtype=jnp.int32))[None, :]
            keep = _common.key_mask(q_idx, k_idx, kv_len, is_causal=is_causal)
            ds = jnp.where(keep, ds, 0.0)
            k = _common.zero_padded_rows(k, k_start, kv_len)
        return acc + _common.dot(ds.astype(k.dtype), k)

    acc = jnp.zeros((block_q, q.shape[-1]), jnp.float32)
    ranges = _common.key_block_ranges(
        q_start, q_len, kv_len, block_q=block_q, block_k=block_k, is_causal=is_causal
    )
    acc = _common.run_loops(ranges, body, acc)
    # Rows of padded queries are zeroed by the caller (see forward.py).
    dq_ref[...] = (acc * (scale * _common.DS_SCALE[tanh_ds])).astype(dq_ref.dtype)


def _dkv_kernel(
    q_ref,
    k_ref,
    v_ref,
    bias_ref,
    do_ref,
    q_len_ref,
    kv_len_ref,
    *refs,
    scale: float,
    block_q: int,
    block_k: int,
    is_causal: bool,
    approx: bool,
    per_key: bool,
    tanh_ds: bool,
    with_dbias: bool,
    fused_bwd: bool,
):
    # refs: [dq_in (aliased to dq_out)], dk, dv, [dbias], [dq_out]. With fused_bwd each query
    # tile's dq contribution, ds k, is added atomically into a float32 dq: no separate dQ kernel
    # recomputing the scores (5 tile products per tile pair instead of 4 + 3).
    if fused_bwd:
        refs = refs[1:]
    dk_ref, dv_ref = refs[:2]
    dbias_ref = refs[2] if with_dbias else None
    dq_ref = refs[-1] if fused_bwd else None
    # Tiles are kept transposed, [block_k, block_q], so that dk and dv accumulate as [block_k, H].
    k_start = pl.program_id(0) * block_k
    q_len = q_len_ref[0]
    kv_len = kv_len_ref[0]
    # Padded keys cleared once per program: dp = v do^T would carry a NaN value into ds.
    k = _common.zero_padded_rows(k_ref[...], k_start, kv_len)
    v = _common.zero_padded_rows(v_ref[...], k_start, kv_len)
    b = _common.load_bias(bias_ref, None, block_k, per_key)
    k_idx = (k_start + jnp.arange(block_k, dtype=jnp.int32))[:, None]

    # Query blocks that see any key of this block: all valid ones, or from the diagonal on.
    lo = (k_start // block_q) if is_causal else 0
    end = jnp.where(k_start < kv_len, pl.cdiv(q_len, block_q), lo)
    # First query block whose every query is at or after this block's last key.
    diag_end = pl.cdiv(k_start + block_k - 1, block_q) if is_causal else lo
    full_end = jnp.where(k_start + block_k <= kv_len, q_len // block_q, diag_end)

    def body(i, carry, masked):
        dk, dv, dbias = carry
        q_start = i * block_q
        q = q_ref[pl.ds(q_start, block_q), :]
        do = do_ref[pl.ds(q_start, block_q), :]
        x = _common.dot(k, q, trans_b=True) * (0.5 * scale) + (b[:, None] if per_key else b)
        w = _weights(x, approx, tanh_ds)
        dp = _common.dot(v, do, trans_b=True)
        if masked:
            q_idx = (q_start + jnp.arange(block_q, dtype=jnp.int32))[None, :]
            keep = _common.key_mask(q_idx, k_idx, kv_len, is_causal=is_causal, q_len=q_len)
            w = jnp.where(keep, w, _common.ZERO_WEIGHT[tanh_ds])
            q = _common.zero_padded_rows(q, q_start, q_len)
        ds = _common.weight_grad(dp, w, tanh_ds)
        p = _common.weight_p(w, tanh_ds)
        dv = dv + _common.dot(p.astype(do.dtype), do)
        dk = dk + _common.dot(ds.astype(q.dtype), q)
        if dq_ref is not None:
            dq = _common.dot(ds.astype(k.dtype), k, trans_a=True)  # Scaled once, by the caller.
            plgpu.atomic_add(dq_ref, (pl.ds(q_start, block_q), slice(None)), dq)
        if dbias is not None:
            dbias = dbias + jnp.sum(ds, axis=1)
        return dk, dv, dbias

    h = k.shape[-1]
    zeros = jnp.zeros((block_k, h), jnp.float32)
    dbias0 = jnp.zeros((block_k,), jnp.float32) if with_dbias else None
    ranges = _common.split_ranges(lo, diag_end, full_end, end)
    dk, dv, dbias = _common.run_loops(ranges, body, (zeros, zeros, dbias0))
    dk_ref[...] = (dk * (scale * _common.DS_SCALE[tanh_ds])).astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)
    if with_dbias:
        dbias_ref[...] = dbias * _common.DS_SCALE[tanh_ds]


def _weights(x_half, approx: bool, tanh_ds: bool):
    """The weights from the halved logits: w = 2 p - 1 with tanh_ds, else p."""
    if tanh_ds:
        return _common.tanh_half(x_half, approx)
    return _common.sigmoid_from_half_logits(x_half, approx)


def _tanh_ds(tanh_ds: bool | None, approx: bool) -> bool:
    return approx if tanh_ds is None else tanh_ds


def _bind(kernel, block_q, block_k, half_bias, scale, is_causal, approx, tanh_ds, **extra):
    """The kernel with its static arguments, shared by both backward kernels. tanh_ds None: on
    with the approximate sigmoid (tanh.approx), off with the exact one (whose float32 tanh near
    -1 would cost it accuracy on small weights)."""
    return functools.partial(
        kernel,
        scale=scale,
        block_q=block_q,
        block_k=block_k,
        is_causal=is_causal,
        approx=approx,
        per_key=half_bias.ndim == 2,
        tanh_ds=_tanh_ds(tanh_ds, approx),
        **extra,
    )


def _launch(kernel, config: KernelConfig, interpret: bool, name: str, **call_kwargs):
    """pallas_call with the backward launch parameters."""
    return pl.pallas_call(
        kernel,
        compiler_params=plgpu.CompilerParams(
            num_warps=config.num_warps_bwd, num_stages=config.num_stages_bwd
        ),
        interpret=interpret,
        name=name,
        **call_kwargs,
    )


def backward_dq(
    q,
    k,
    v,
    half_bias,
    do,
    q_lens,
    kv_lens,
    *,
    scale: float,
    is_causal: bool,
    config: KernelConfig,
    approx_sigmoid: bool,
    interpret: bool,
    tanh_ds: bool | None = None,
) -> jax.Array:
    """dQ for block-aligned inputs (shapes as `forward`, do like q). Returns [B, T, N, H].

    tanh_ds: the weights' gradient from w = tanh(logit / 2) as dp (1 - w^2) (as the Hopper
    backward's, see hopper.fused_backward); default: with approx_sigmoid."""
    b, t, n, h = q.shape
    s = k.shape[1]
    bq, bk = config.block_q_dq, config.block_k_dq
    kernel = _bind(_dq_kernel, bq, bk, half_bias, scale, is_causal, approx_sigmoid, tanh_ds)
    q_spec = _common.tokens_spec(n, h, bq)
    kv_spec = _common.tokens_spec(n, h, None, s)
    return _launch(
        kernel,
        config,
        interpret,
        "sigmoid_attention_bwd_dq",
        grid=(t // bq, b * n),
        in_specs=[
            q_spec,
            kv_spec,
            kv_spec,
            _common.bias_spec(half_bias, n, None, False),
            q_spec,
            _common.lengths_spec(n),
            _common.lengths_spec(n),
        ],
        out_specs=q_spec,
        out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
    )(q, k, v, half_bias, do, q_lens, kv_lens)


def backward_dkv(
    q,
    k,
    v,
    half_bias,
    do,
    q_lens,
    kv_lens,
    *,
    scale: float,
    is_causal: bool,
    config: KernelConfig,
    approx_sigmoid: bool,
    interpret: bool,
    with_dbias: bool,
    tanh_ds: bool | None = None,
):
    """dK, dV, per-head bias column sums [B, N, S] float32 (None unless with_dbias), and dQ.

    dQ is None unless config.fused_bwd: then this kernel also adds every tile's dQ share
    atomically into a float32 [B, T, N, H] buffer (returned in q's dtype) and `backward_dq` is
    not needed. tanh_ds: as backward_dq's.
    """
    b, t, n, h = q.shape
    s = k.shape[1]
    bq, bk = config.block_q_dkv, config.block_k_dkv
    fused = config.fused_bwd
    kernel = _bind(
        _dkv_kernel,
        bq,
        bk,
        half_bias,
        scale,
        is_causal,
        approx_sigmoid,
        tanh_ds,
        with_dbias=with_dbias,
        fused_bwd=fused,
    )
    q_spec = _common.tokens_spec(n, h, None, t)
    kv_spec = _common.tokens_spec(n, h, bk)
    in_specs = [
        q_spec,
        kv_spec,
        kv_spec,
        _common.bias_spec(half_bias, n, bk, True),
        q_spec,
        _common.lengths_spec(n),
        _common.lengths_spec(n),
    ]
    args = [q, k, v, half_bias, do, q_lens, kv_lens]
    out_specs = [kv_spec, kv_spec]
    out_shape = [jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)]
    if with_dbias:
        out_specs.append(pl.BlockSpec((None, None, bk), lambda j, bn: (bn // n, bn % n, j)))
        out_shape.append(jax.ShapeDtypeStruct((b, n, s), jnp.float32))
    aliases = {}
    if fused:
        in_specs.append(q_spec)
        args.append(jnp.zeros(q.shape, jnp.float32))
        out_specs.append(q_spec)
        out_shape.append(jax.ShapeDtypeStruct(q.shape, jnp.float32))
        aliases = {len(args) - 1: len(out_shape) - 1}
    outs = _launch(
        kernel,
        config,
        interpret,
        "sigmoid_attention_bwd_dkv_dq" if fused else "sigmoid_attention_bwd_dkv",
        grid=(s // bk, b * n),
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        input_output_aliases=aliases,
    )(*args)
    dk, dv = outs[0], outs[1]
    dbias = outs[2] if with_dbias else None
    ds_scale = _common.DS_SCALE[_tanh_ds(tanh_ds, approx_sigmoid)]
    dq = (outs[-1] * (scale * ds_scale)).astype(q.dtype) if fused else None
    return dk, dv, dbias, dq
