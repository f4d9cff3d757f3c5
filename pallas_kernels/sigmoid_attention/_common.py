"""Pieces shared by the forward and backward kernels."""

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu


def sigmoid_from_half_logits(x_half: jax.Array, approx: bool) -> jax.Array:
    """sigmoid(x) from x/2, in float32.

    sigmoid(x) = 0.5 + 0.5 tanh(x/2). The approximate path uses the PTX tanh.approx instruction
    (one special-function op instead of exp plus a division); it must stay in float32, since the
    default -log(n) bias puts the weights near 1/n, below bf16's resolution around tanh = -1.
    """
    if approx:
        return 0.5 * plgpu.approx_tanh(x_half) + 0.5
    return 1.0 / (1.0 + jnp.exp(-2.0 * x_half))


def tanh_half(x_half: jax.Array, approx: bool) -> jax.Array:
    """tanh(x/2) = 2 sigmoid(x) - 1 from x/2, in float32 (the backward's `tanh_ds` form)."""
    return plgpu.approx_tanh(x_half) if approx else jnp.tanh(x_half)


def weight_grad(dp: jax.Array, w: jax.Array, tanh_ds: bool) -> jax.Array:
    """d(loss)/d(logit) from dp and the weights: with tanh_ds, w = 2 p - 1 and the result is
    4 ds = dp (1 - w^2), two operations per element (the caller scales by DS_SCALE[tanh_ds]);
    else w = p and ds = dp p (1 - p), three."""
    return dp - dp * (w * w) if tanh_ds else dp * w * (1.0 - w)


def weight_p(w: jax.Array, tanh_ds: bool) -> jax.Array:
    """p from the weights as tanh_ds keeps them (w = 2 p - 1), or as they are (w = p)."""
    return 0.5 * w + 0.5 if tanh_ds else w


# The factor on products of weight_grad's result: tanh_ds gives 4 ds.
DS_SCALE = {True: 0.25, False: 1.0}
# What stands for a weight of 0 (a masked pair) in either form.
ZERO_WEIGHT = {True: -1.0, False: 0.0}


def dot(a: jax.Array, b: jax.Array, *, trans_a: bool = False, trans_b: bool = False) -> jax.Array:
    """Tile product with float32 accumulation; float32 tiles use full IEEE precision."""
    precision = lax.Precision.HIGHEST if a.dtype == jnp.float32 else None
    return plgpu.dot(a, b, trans_a=trans_a, trans_b=trans_b, precision=precision)


def bias_spec(half_bias: jax.Array, n: int, block: int | None, axis_from_grid: bool):
    """BlockSpec of the halved logit bias: [B, S] per key, or [B] one scalar per sequence.

    The scalar form (no per-key bias) saves a vector load and a broadcast in every tile.
    """
    if half_bias.ndim == 1:
        return lengths_spec(n)
    if axis_from_grid:
        return pl.BlockSpec((None, block), lambda j, bn: (bn // n, j))
    return pl.BlockSpec((None, half_bias.shape[1]), lambda i, bn: (bn // n, 0))


def load_bias(bias_ref, start, size: int, per_key: bool):
    """The halved bias for keys [start, start + size): a [size] vector, or the sequence's scalar."""
    if not per_key:
        return bias_ref[0]
    return bias_ref[pl.ds(start, size)] if start is not None else bias_ref[...]


def run_loops(ranges, body, carry):
    """Runs `body(index, carry, masked)` over consecutive [lo, hi) ranges, each with its mask flag.

    Interior tiles (fully valid, fully below the causal diagonal) take the unmasked body; only
    boundary tiles pay for building and applying a mask.
    """
    for lo, hi, masked in ranges:
        carry = lax.fori_loop(lo, hi, lambda j, c, m=masked: body(j, c, m), carry)
    return carry


def split_ranges(lo, mask_lo_end, full_end, end):
    """[lo, mask_lo_end) masked, [mask_lo_end, full_end) unmasked, [full_end, end) masked.

    mask_lo_end=None means there is no leading masked range (forward and dQ kernels).

    Bounds are clamped so that the three ranges are ordered and stay within [lo, end).
    """
    if mask_lo_end is None:  # Statically no leading masked range.
        full_end = jnp.clip(full_end, lo, end)
        return ((lo, full_end, False), (full_end, end, True))
    mask_lo_end = jnp.clip(mask_lo_end, lo, end)
    full_end = jnp.clip(full_end, mask_lo_end, end)
    return ((lo, mask_lo_end, True), (mask_lo_end, full_end, False), (full_end, end, True))


def key_block_ranges(q_start, q_len, kv_len, *, block_q: int, block_k: int, is_causal: bool):
    """Key-block loop ranges for one query block (forward and dQ kernels).

    Blocks holding any valid key (and, when causal, any key j <= the block's last valid query);
    blocks [0, full_end) need no mask (every key valid and, when causal, at or before the block's
    first query); a query block that is all padding gets no work at all.
    """
    end = pl.cdiv(kv_len, block_k)
    full_end = kv_len // block_k
    if is_causal:
        end = jnp.minimum(end, pl.cdiv(jnp.minimum(q_start + block_q, q_len), block_k))
        full_end = jnp.minimum(full_end, (q_start + 1) // block_k)
    end = jnp.where(q_start < q_len, end, 0)
    return split_ranges(0, None, full_end, end)


def key_mask(q_idx, k_idx, kv_len, *, is_causal: bool, q_len=None):
    """Boolean tile: key valid, (when causal) at or before the query, (given q_len) query valid.

    q_idx and k_idx are broadcastable index vectors, [block_q, 1] and [1, block_k] for a
    [block_q, block_k] tile (forward, dQ) or [1, block_q] and [block_k, 1] for the transposed
    tiles of the dK/dV kernel.
    """
    keep = k_idx < kv_len
    if q_len is not None:
        keep = keep & (q_idx < q_len)
    if is_causal:
        keep = keep & (k_idx <= q_idx)
    return keep


def zero_padded_rows(x: jax.Array, start, length) -> jax.Array:
    """A [block, H] tile of tokens start, start + 1, ... with those at or after `length` set to 0.

    Masked weights are exactly 0, but 0 times a NaN or inf in a padded token is NaN: boundary
    tiles clear padded tokens before a product sums over them.
    """
    rows = (start + jnp.arange(x.shape[0], dtype=jnp.int32))[:, None] < length
    return jnp.where(rows, x, jnp.zeros((), x.dtype))


def lengths_spec(n: int):
    """BlockSpec of a [B] length (or scalar-bias) vector read by program (block, b * N + head)."""
    return pl.BlockSpec((1,), lambda i, bn: (bn // n,))


def tokens_spec(n: int, h: int, block: int | None, length: int | None = None):
    """BlockSpec of a [B, L, N, H] array for program (block, b * N + head).

    block: one tile of `block` tokens per grid index; None: the whole sequence (`length`
    tokens, block index 0 along the sequence axis).
    """
    if block is None:
        return pl.BlockSpec((None, length, None, h), lambda i, bn: (bn // n, 0, bn % n, 0))
    return pl.BlockSpec((None, block, None, h), lambda i, bn: (bn // n, i, bn % n, 0))
