"""Forward kernel: one program per (query block, batch, head), one loop over key blocks.

Sigmoid weights are independent per (query, key) pair, so there is no running max, row sum or
log-sum-exp to carry: the accumulator is simply sum_j sigmoid(s_ij) v_j.
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from pallas_kernels.sigmoid_attention import _common
from pallas_kernels.sigmoid_attention.config import KernelConfig


def _forward_kernel(
    q_ref,
    k_ref,
    v_ref,
    bias_ref,
    q_len_ref,
    kv_len_ref,
    o_ref,
    *,
    half_scale: float,
    block_q: int,
    block_k: int,
    is_causal: bool,
    approx: bool,
    per_key: bool,
):
    # q_ref: [block_q, H]; k_ref, v_ref: [S, H]; bias_ref: [S] (per_key) or [1] float32, already
    # halved (0.5 * (sigmoid_bias + key bias)); q_len_ref, kv_len_ref: [1]; o_ref: [block_q, H].
    q_start = pl.program_id(0) * block_q
    q_len = q_len_ref[0]
    kv_len = kv_len_ref[0]
    q = q_ref[...]
    q_idx = (q_start + jnp.arange(block_q, dtype=jnp.int32))[:, None]

    def body(j, acc, masked):
        k_start = j * block_k
        k = k_ref[pl.ds(k_start, block_k), :]
        v = v_ref[pl.ds(k_start, block_k), :]
        b = _common.load_bias(bias_ref, k_start, block_k, per_key)
        s = _common.dot(q, k, trans_b=True) * half_scale + (b[None, :] if per_key else b)
        p = _common.sigmoid_from_half_logits(s, approx)
        if masked:
            k_idx = (k_start + jnp.arange(block_k, dtype=jnp.int32))[None, :]
            keep = _common.key_mask(q_idx, k_idx, kv_len, is_causal=is_causal)
            p = jnp.where(keep, p, 0.0)
            v = _common.zero_padded_rows(v, k_start, kv_len)
        return acc + _common.dot(p.astype(v.dtype), v)

    acc = jnp.zeros((block_q, q.shape[-1]), jnp.float32)
    # No leading masked range here: passing None drops that loop from the code entirely (an
    # empty loop still cost ~8% on an H200). Rows of padded queries are zeroed by the caller in
    # XLA: a row select on the accumulator here cost ~15% of forward throughput.
    ranges = _common.key_block_ranges(
        q_start, q_len, kv_len, block_q=block_q, block_k=block_k, is_causal=is_causal
    )
    acc = _common.run_loops(ranges, body, acc)
    o_ref[...] = acc.astype(o_ref.dtype)


def forward(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    half_bias: jax.Array,
    q_lens: jax.Array,
    kv_lens: jax.Array,
    *,
    scale: float,
    is_causal: bool,
    config: KernelConfig,
    approx_sigmoid: bool,
    interpret: bool,
) -> jax.Array:
    """Sigmoid attention forward on block-aligned inputs.

    Args:
      q: [B, T, N, H] with T a multiple of config.block_q and H a power of 2.
      k, v: [B, S, N, H] with S a multiple of config.block_k.
      half_bias: [B, S] float32, 0.5 * (sigmoid_bias_b + key bias_bj), or [B] without key bias.
      q_lens, kv_lens: [B] int32 valid lengths.
      scale: logit scale.
      is_causal: mask keys after the query.
      config: tiles and launch parameters.
      approx_sigmoid: use tanh.approx (GPU only).
      interpret: run in Pallas interpret mode.

    Returns:
      [B, T, N, H] in q's dtype; rows of padded queries hold unspecified finite values (the
      caller zeroes them).
    """
    b, t, n, h = q.shape
    s = k.shape[1]
    bq, bk = config.block_q, config.block_k
    kernel = functools.partial(
        _forward_kernel,
        half_scale=0.5 * scale,
        block_q=bq,
        block_k=bk,
        is_causal=is_causal,
        approx=approx_sigmoid,
        per_key=half_bias.ndim == 2,
    )
    q_spec = _common.tokens_spec(n, h, bq)
    kv_spec = _common.tokens_spec(n, h, None, s)
    return pl.pallas_call(
        kernel,
        grid=(t // bq, b * n),
        in_specs=[
            q_spec,
            kv_spec,
            kv_spec,
            _common.bias_spec(half_bias, n, None, axis_from_grid=False),
            _common.lengths_spec(n),
            _common.lengths_spec(n),
        ],
        out_specs=q_spec,
        out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
        compiler_params=plgpu.CompilerParams(
            num_warps=config.num_warps, num_stages=config.num_stages
        ),
        interpret=interpret,
        name="sigmoid_attention_fwd",
    )(q, k, v, half_bias, q_lens, kv_lens)
