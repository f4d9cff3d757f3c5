"""Attention layers: sigjax NNX self-attention and an `attention_fn` for nnx.MultiHeadAttention."""

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from sigjax.attention import (
    SIGMOID_IMPLEMENTATIONS,
    SOFTMAX_IMPLEMENTATIONS,
    check_implementation,
    sigmoid_attention,
    softmax_attention,
)

ATTENTIONS = ("sigmoid", "softmax")
# Each attention accepts its own implementations; None is the automatic choice of both.
IMPLEMENTATIONS = {"sigmoid": SIGMOID_IMPLEMENTATIONS, "softmax": SOFTMAX_IMPLEMENTATIONS}


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: got {value!r}, expected one of {list(choices)}")


def check_attention(attention: str, implementation: str | None) -> None:
    """Raises unless `attention` is known and `implementation` is one it can honour.

    Raises:
      ValueError: naming the argument, the value and the accepted ones (e.g. "cudnn" for sigmoid:
        cuDNN has no sigmoid attention, and a request is never silently swapped for another).
    """
    _check_choice("model.attention", attention, ATTENTIONS)
    check_implementation(
        implementation, IMPLEMENTATIONS[attention], f"{attention} attention", "model.implementation"
    )


def column_blocks(linear: nnx.Linear, x: jax.Array, parts: int) -> list[jax.Array]:
    """`linear(x)` split into `parts` equal blocks of its output features, one matmul each.

    Same parameters and values as slicing `linear(x)`, but each block comes out contiguous: the
    attention kernels take contiguous [B, L, N, H] arrays, so slices of one [B, L, 3E] product
    cost a copy of q, k, v forward and a concatenation of their gradients backward.
    """
    kernel = linear.kernel[...]
    bias = linear.bias[...] if linear.bias is not None else None
    x, kernel, bias = linear.promote_dtype((x, kernel, bias), dtype=linear.dtype)
    width = kernel.shape[-1] // parts
    blocks = []
    for i in range(parts):
        cols = slice(i * width, (i + 1) * width)
        y = jnp.dot(x, kernel[:, cols], precision=linear.precision)
        blocks.append(y if bias is None else y + bias[cols])
    return blocks


def attend(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S N H"],
    v: Float[Array, "B S N H"],
    lengths: Int[Array, " B"],
    *,
    attention: str,
    implementation: str | None,
) -> Float[Array, "B T N H"]:
    """Self-attention over padded sequences: the sigmoid op or the softmax baseline.

    Args:
      q: queries.
      k: keys.
      v: values.
      lengths: valid tokens of each sequence; passed as both query and key/value lengths, so padded
        keys get weight 0 and padded query rows are 0.
      attention: "sigmoid" or "softmax".
      implementation: None (the best on the backend: the Pallas sigmoid kernel or cuDNN softmax
        on GPU, XLA on CPU), "xla", "pallas" (sigmoid only) or "cudnn" (softmax only).

    Returns:
      The attention output, same shape as `q`.

    Raises:
      ValueError: unknown `attention`, or an `implementation` it does not have.
    """
    check_attention(attention, implementation)
    if attention == "sigmoid":
        return sigmoid_attention(
            q,
            k,
            v,
            query_seq_lengths=lengths,
            key_value_seq_lengths=lengths,
            implementation=implementation,
        )
    return softmax_attention(
        q,
        k,
        v,
        query_seq_lengths=lengths,
        key_value_seq_lengths=lengths,
        implementation=implementation,
    )


class SelfAttention(nnx.Module):
    """Multi-head self-attention over padded sequences, sigmoid or softmax.

    Args:
      embed_dim: model width E (a multiple of num_heads).
      num_heads: N.
      attention: "sigmoid" or "softmax".
      implementation: see `attend`.
      dtype: compute dtype (parameters stay float32).
      rngs: initialisation keys.

    Raises:
      ValueError: embed_dim not a multiple of num_heads, unknown attention or implementation.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        attention: str = "sigmoid",
        implementation: str | None = None,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if num_heads < 1:
            raise ValueError(f"model.num_heads: got {num_heads}, expected at least 1")
        if embed_dim % num_heads:
            raise ValueError(
                f"model.embed_dim: got {embed_dim}, expected a multiple of "
                f"model.num_heads={num_heads}"
            )
        check_attention(attention, implementation)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.attention, self.implementation = attention, implementation
        self.qkv = nnx.Linear(embed_dim, 3 * embed_dim, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(embed_dim, embed_dim, dtype=dtype, rngs=rngs)

    def __call__(
        self, x: Float[Array, "B L E"], lengths: Int[Array, " B"]
    ) -> Float[Array, "B L E"]:
        """Attends every token to the valid tokens of its sequence (`lengths`).

        Raises:
          ValueError: `x` not [B, L, E] with this layer's E; as `sigjax.sigmoid_attention` for
            `lengths`.
        """
        if getattr(x, "ndim", None) != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"x: got shape {getattr(x, 'shape', type(x).__name__)}, expected "
                f"[B, L, E={self.embed_dim}]"
            )
        b, length, e = x.shape
        q, k, v = (
            y.reshape(b, length, self.num_heads, e // self.num_heads)
            for y in column_blocks(self.qkv, x, 3)
        )
        out = attend(
            q,
            k,
            v,
            lengths,
            attention=self.attention,
            implementation=self.implementation,
        )
        return self.out(out.reshape(b, length, e))


def _broadcast(name: str, x: jax.Array, shape: tuple) -> jax.Array:
    """`x` broadcast to `shape` ([..., N, T, S]), or a ValueError naming the argument."""
    try:
        return jnp.broadcast_to(x, shape)
    except ValueError as e:
        raise ValueError(
            f"{name}: got shape {jnp.shape(x)}, expected a shape broadcastable to [..., N, T, S] "
            f"= {shape}"
        ) from e


def make_attention_fn(attention: str = "sigmoid", implementation: str | None = None):
    """An `attention_fn` for `flax.nnx.MultiHeadAttention` that runs sigjax attention.

    nnx passes query/key/value as [..., T|S, N, H] and an optional boolean `mask` broadcastable to
    [..., N, T, S] (True = attend). Without a mask the chosen implementation runs (the Pallas
    kernel on GPU) with the paper's bias -log(S). With a mask, the XLA path runs exactly:
    masked-out keys get weight 0 (logit -inf), and for sigmoid the bias is -log(number of keys
    the mask lets each query row see), so a padding mask gives the same result as sequence
    lengths would; a fully masked row outputs 0. For padded sequences `SelfAttention` is the
    faster choice: lengths let the kernel skip padded blocks. Attention dropout is not supported.

    Args:
      attention: "sigmoid" or "softmax".
      implementation: see `attend`; with a mask or bias only None or "xla" (the XLA path runs).

    Returns:
      attention_fn(query, key, value, bias=None, mask=None, ..., is_causal=False) -> [..., T, N, H].

    Raises:
      ValueError: unknown attention or implementation; at call time a non-zero dropout_rate with
        deterministic=False, a mask or bias that does not broadcast to [..., N, T, S], or
        inputs that `sigjax.sigmoid_attention` refuses.
    """
    check_attention(attention, implementation)

    def attention_fn(
        query: Float[Array, "... T N H"],
        key: Float[Array, "... S N H"],
        value: Float[Array, "... S N H"],
        bias: Float[Array, "... N T S"] | None = None,
        mask: Bool[Array, "... N T S"] | None = None,
        broadcast_dropout: bool = True,
        dropout_rng=None,
        dropout_rate: float = 0.0,
        deterministic: bool = False,
        dtype=None,
        precision=None,
        module=None,
        is_causal: bool = False,
        **unused,
    ) -> Float[Array, "... T N H"]:
        del broadcast_dropout, dropout_rng, precision, module, unused
        if dropout_rate and not deterministic:
            raise ValueError(
                f"dropout_rate: got {dropout_rate}, expected 0 (or deterministic=True) with "
                "sigjax attention"
            )
        if query.ndim < 3:
            raise ValueError(f"query: got shape {query.shape}, expected [..., T, N, H]")
        batch_shape = query.shape[:-3]
        # Fold any leading batch dims into one: the op takes [B, T, N, H].
        q, k, v = (x.reshape((-1, *x.shape[-3:])) for x in (query, key, value))
        if dtype is not None:
            q, k, v = (x.astype(dtype) for x in (q, k, v))
        t, n, s = q.shape[1], q.shape[2], k.shape[1]
        full_bias, sigmoid_bias = None, None
        if mask is not None:
            mask = _broadcast("mask", mask, (*batch_shape, n, t, s)).reshape(-1, n, t, s)
            full_bias = jnp.where(mask, 0.0, -jnp.inf)
            if attention == "sigmoid":
                # The paper's -log(valid keys), per query row since a mask may differ per row.
                visible = jnp.maximum(mask.sum(-1, keepdims=True), 1).astype(jnp.float32)
                full_bias = full_bias - jnp.log(visible)
                sigmoid_bias = 0.0
        if bias is not None:
            bias = _broadcast("bias", bias, (*batch_shape, n, t, s)).reshape(-1, n, t, s)
            full_bias = bias if full_bias is None else full_bias + bias
        exact = full_bias is not None  # A [B, N, T, S] bias needs the XLA path.
        if exact and implementation not in (None, "xla"):
            raise ValueError(
                f"implementation: got {implementation!r} with a mask or bias, expected None or "
                "'xla' (a [..., N, T, S] mask or bias runs on the XLA path only; pass lengths "
                "through sigjax.model.SelfAttention to use the kernel)"
            )
        if attention == "sigmoid":
            out = sigmoid_attention(
                q,
                k,
                v,
                full_bias,
                sigmoid_bias=sigmoid_bias,
                is_causal=is_causal,
                implementation="xla" if exact else implementation,
            )
        else:
            out = softmax_attention(
                q,
                k,
                v,
                full_bias,
                is_causal=is_causal,
                implementation="xla" if exact else implementation,
            )
        return out.reshape((*batch_shape, *out.shape[1:]))

    return attention_fn


class Mlp(nnx.Module):
    """Position-wise E -> M -> E with GELU.

    Args:
      embed_dim: E.
      mlp_dim: M.
      dtype: compute dtype (parameters stay float32).
      rngs: initialisation keys.
    """

    def __init__(self, embed_dim: int, mlp_dim: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.up = nnx.Linear(embed_dim, mlp_dim, dtype=dtype, rngs=rngs)
        self.down = nnx.Linear(mlp_dim, embed_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: Float[Array, "B L E"]) -> Float[Array, "B L E"]:
        return self.down(jax.nn.gelu(self.up(x)))
