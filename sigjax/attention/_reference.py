"""XLA reference for sigmoid and softmax attention: the definition the kernels are tested against.

Dimension letters: B batch, T query tokens, S key tokens, N heads, H head dim.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def valid_mask(
    q_lens: Int[Array, " B"],
    kv_lens: Int[Array, " B"],
    t: int,
    s: int,
    is_causal: bool,
) -> jax.Array:
    """Boolean [B, 1, T, S] mask of the (query, key) pairs that take part in attention."""
    q_idx = jnp.arange(t, dtype=jnp.int32)
    k_idx = jnp.arange(s, dtype=jnp.int32)
    mask = (q_idx[None, :, None] < q_lens[:, None, None]) & (
        k_idx[None, None, :] < kv_lens[:, None, None]
    )
    if is_causal:
        mask = mask & (k_idx[None, None, :] <= q_idx[None, :, None])
    return mask[:, None]


def zero_padding(x: Float[Array, "B L N H"], lens: Int[Array, " B"]) -> Float[Array, "B L N H"]:
    """`x` with the tokens at or after each sequence's length set to 0.

    Masked weights are exactly 0, but 0 times a NaN or inf is NaN: whatever padded tokens hold
    (uninitialised buffers, a missing value) must not reach valid outputs or gradients. The
    select also gives padded tokens exactly zero gradient.
    """
    rows = jnp.arange(x.shape[1], dtype=jnp.int32)[None, :] < lens[:, None]
    return jnp.where(rows[:, :, None, None], x, jnp.zeros((), x.dtype))


def _precision(dtype) -> jax.lax.Precision:
    # float32 inputs are the accuracy reference: keep XLA on GPU from dropping to TF32.
    return jax.lax.Precision.HIGHEST if dtype == jnp.float32 else jax.lax.Precision.DEFAULT


def _broadcast_bias(bias: jax.Array, b: int, n: int, t: int, s: int) -> jax.Array:
    if bias.ndim == 2:  # [B, S]: one additive logit per key.
        bias = bias[:, None, None, :]
    return jnp.broadcast_to(bias.astype(jnp.float32), (b, n, t, s))


def sigmoid_attention_xla(
    query: Float[Array, "B T N H"],
    key: Float[Array, "B S N H"],
    value: Float[Array, "B S N H"],
    bias: jax.Array | None,
    sigmoid_bias: Float[Array, " B"],
    q_lens: Int[Array, " B"],
    kv_lens: Int[Array, " B"],
    *,
    scale: float,
    is_causal: bool,
) -> Float[Array, "B T N H"]:
    """out[b, i] = sum_j sigmoid(scale q_i.k_j + sigmoid_bias_b + bias[b, j]) v_j over valid (i, j).

    Scores and weights are float32 whatever the input dtype; the output takes the query dtype.
    Rows of padded queries are exactly 0 and masked pairs contribute exactly 0 (also to gradients).
    """
    b, t, n, _ = query.shape
    s = key.shape[1]
    query = zero_padding(query, q_lens)
    key, value = zero_padding(key, kv_lens), zero_padding(value, kv_lens)
    logits = jnp.einsum(
        "btnh,bsnh->bnts",
        query,
        key,
        preferred_element_type=jnp.float32,
        precision=_precision(query.dtype),
    )
    logits = logits * scale + sigmoid_bias.astype(jnp.float32)[:, None, None, None]
    if bias is not None:
        logits = logits + _broadcast_bias(bias, b, n, t, s)
    mask = valid_mask(q_lens, kv_lens, t, s, is_causal)
    # Masked logits are replaced before the sigmoid too: a NaN there (a NaN bias on a padded key)
    # would come back through its gradient as 0 * NaN into dq, dk and the bias gradient.
    weights = jnp.where(mask, jax.nn.sigmoid(jnp.where(mask, logits, 0.0)), 0.0)
    out = jnp.einsum(
        "bnts,bsnh->btnh",
        weights.astype(value.dtype) if value.dtype != jnp.float32 else weights,
        value,
        preferred_element_type=jnp.float32,
        precision=_precision(value.dtype),
    )
    return out.astype(query.dtype)


def softmax_attention_xla(
    query: Float[Array, "B T N H"],
    key: Float[Array, "B S N H"],
    value: Float[Array, "B S N H"],
    bias: jax.Array | None,
    q_lens: Int[Array, " B"],
    kv_lens: Int[Array, " B"],
    *,
    scale: float,
    is_causal: bool,
) -> Float[Array, "B T N H"]:
    """Softmax attention with the same masking rules; rows with no valid key are 0.

    A key whose logit is -inf (a -inf bias: how `make_attention_fn` passes a mask) is masked too,
    so a row that a bias hides entirely is 0 like a row with no valid key, not NaN.
    """
    b, t, n, _ = query.shape
    s = key.shape[1]
    query = zero_padding(query, q_lens)
    key, value = zero_padding(key, kv_lens), zero_padding(value, kv_lens)
    logits = jnp.einsum(
        "btnh,bsnh->bnts",
        query,
        key,
        preferred_element_type=jnp.float32,
        precision=_precision(query.dtype),
    )
    logits = logits * scale
    if bias is not None:
        logits = logits + _broadcast_bias(bias, b, n, t, s)
    mask = valid_mask(q_lens, kv_lens, t, s, is_causal) & (logits != -jnp.inf)
    # A finite fill keeps fully masked rows NaN-free; they are zeroed below.
    logits = jnp.where(mask, logits, -1e30)
    weights = jax.nn.softmax(logits, axis=-1)
    weights = jnp.where(mask, weights, 0.0)
    out = jnp.einsum(
        "bnts,bsnh->btnh",
        weights.astype(value.dtype) if value.dtype != jnp.float32 else weights,
        value,
        preferred_element_type=jnp.float32,
        precision=_precision(value.dtype),
    )
    return out.astype(query.dtype)
