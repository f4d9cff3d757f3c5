"""Attention layers: a sigjax NNX self-attention and an `attention_fn` for nnx.MultiHeadAttention."""

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from sigjax.attention import sigmoid_attention, softmax_attention

ATTENTIONS = ("sigmoid", "softmax")


def attend(q, k, v, lengths, *, attention: str, implementation: str | None):
    """Dispatches to the sigmoid op or the softmax baseline with per-sequence lengths.

    `implementation`: None/"auto" (best on the backend), "pallas" (sigmoid kernel; softmax then
    uses cuDNN where available), "xla", or "cudnn" (softmax only).
    """
    impl = None if implementation in (None, "auto", "") else implementation
    if attention == "sigmoid":
        return sigmoid_attention(
            q, k, v, query_seq_lengths=lengths, key_value_seq_lengths=lengths,
            implementation=None if impl == "cudnn" else impl,
        )
    if attention == "softmax":
        return softmax_attention(
            q, k, v, query_seq_lengths=lengths, key_value_seq_lengths=lengths,
            implementation=None if impl == "pallas" else impl,
        )
    raise ValueError(f"model.attention: got {attention!r}, expected one of {ATTENTIONS}")


class SelfAttention(nnx.Module):
    """Multi-head self-attention over padded sequences, sigmoid or softmax.

    Args:
      embed_dim: model width E (a multiple of num_heads).
      num_heads: N.
      attention: "sigmoid" or "softmax".
      implementation: see `attend`.
      dtype: compute dtype (parameters stay float32).
      rngs: initialisation keys.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, attention: str = "sigmoid",
                 implementation: str | None = None, dtype=jnp.float32, rngs: nnx.Rngs):
        if embed_dim % num_heads:
            raise ValueError(
                f"model.embed_dim: got {embed_dim}, expected a multiple of model.num_heads={num_heads}"
            )
        if attention not in ATTENTIONS:
            raise ValueError(f"model.attention: got {attention!r}, expected one of {ATTENTIONS}")
        self.num_heads, self.attention, self.implementation = num_heads, attention, implementation
        self.qkv = nnx.Linear(embed_dim, 3 * embed_dim, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(embed_dim, embed_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: Float[Array, "B L E"], lengths: Int[Array, " B"]) -> Float[Array, "B L E"]:
        b, length, e = x.shape
        qkv = self.qkv(x).reshape(b, length, 3, self.num_heads, e // self.num_heads)
        out = attend(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], lengths,
                     attention=self.attention, implementation=self.implementation)
        return self.out(out.reshape(b, length, e))


def make_attention_fn(attention: str = "sigmoid", implementation: str | None = None):
    """An `attention_fn` for `flax.nnx.MultiHeadAttention` that runs sigjax attention.

    nnx passes query/key/value as [..., L, N, H] and an optional boolean `mask` broadcastable to
    [..., N, T, S]. The mask is applied exactly through the xla path (masked weights are 0); with
    no mask the chosen implementation runs (the Pallas kernel on GPU). For padded sequences prefer
    `SelfAttention`, which passes lengths and lets the kernel skip padding. Dropout arguments are
    not supported (dropout_rate must be 0).
    """
    if attention not in ATTENTIONS:
        raise ValueError(f"attention: got {attention!r}, expected one of {ATTENTIONS}")

    def attention_fn(query, key, value, bias=None, mask=None, broadcast_dropout=True,
                     dropout_rng=None, dropout_rate=0.0, deterministic=False, dtype=None,
                     precision=None, module=None, **unused):
        del broadcast_dropout, dropout_rng, deterministic, precision, module, unused
        if dropout_rate:
            raise ValueError(f"dropout_rate: got {dropout_rate}, expected 0 with sigjax attention")
        batch_shape = query.shape[:-3]
        q, k, v = (x.reshape((-1, *x.shape[-3:])) for x in (query, key, value))
        if dtype is not None:
            q, k, v = (x.astype(dtype) for x in (q, k, v))
        t, n, s = q.shape[1], q.shape[2], k.shape[1]
        full_bias = None
        if mask is not None:
            mask = jnp.broadcast_to(mask, (*batch_shape, n, t, s)).reshape(-1, n, t, s)
            full_bias = jnp.where(mask, 0.0, -jnp.inf)
        if bias is not None:
            bias = jnp.broadcast_to(bias, (*batch_shape, n, t, s)).reshape(-1, n, t, s)
            full_bias = bias if full_bias is None else full_bias + bias
        impl = None if implementation in (None, "auto") else implementation
        if attention == "sigmoid":
            out = sigmoid_attention(q, k, v, full_bias,
                                    implementation="xla" if full_bias is not None else impl)
        else:
            out = softmax_attention(q, k, v, full_bias,
                                    implementation="xla" if full_bias is not None else None)
        return out.reshape((*batch_shape, *out.shape[1:]))

    return attention_fn


class Mlp(nnx.Module):
    """Position-wise E -> M -> E with GELU."""

    def __init__(self, embed_dim: int, mlp_dim: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.up = nnx.Linear(embed_dim, mlp_dim, dtype=dtype, rngs=rngs)
        self.down = nnx.Linear(mlp_dim, embed_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.down(jax.nn.gelu(self.up(x)))
