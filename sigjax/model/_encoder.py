"""CellEncoder: a bidirectional pre-LayerNorm transformer over a cell's expressed genes."""

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Bool, Float, Int

from sigjax.model._layers import Mlp, SelfAttention

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _lookup(embed: nnx.Embed, ids):
    """Embedding rows for ids; the output keeps the ids' batch sharding under explicit meshes."""
    table = embed.embedding[...]
    sharding = getattr(jax.typeof(ids), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty:
        return jnp.take(table, ids, axis=0)
    return table.at[ids].get(out_sharding=P(*sharding.spec, None))


def _dropout(x, rate: float, key):
    if not rate or key is None:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


class Block(nnx.Module):
    """x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg, *, dtype, rngs: nnx.Rngs):
        e = cfg.embed_dim
        self.attention_norm = nnx.LayerNorm(e, dtype=dtype, rngs=rngs)
        self.attention = SelfAttention(e, cfg.num_heads, attention=cfg.attention,
                                       implementation=cfg.implementation or None, dtype=dtype, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(e, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(e, cfg.mlp_dim, dtype=dtype, rngs=rngs)
        self.dropout = float(cfg.dropout)

    def __call__(self, x, lengths, key=None):
        keys = jax.random.split(key, 2) if key is not None else (None, None)
        x = x + _dropout(self.attention(self.attention_norm(x), lengths), self.dropout, keys[0])
        return x + _dropout(self.mlp(self.mlp_norm(x)), self.dropout, keys[1])


class CellEncoder(nnx.Module):
    """Gene + value embeddings, `num_layers` blocks, a masked-expression head, a cell embedding.

    Tokens carry no position: a cell is a set of genes, and the order (by expression) must not
    matter. Values are "binned" (an embedding of n_bins + 1 entries, the last one meaning
    "masked"; the head predicts the bin with cross-entropy) or "continuous" (a linear embedding of
    the log1p value plus a learned mask vector; the head regresses the value with squared error).

    Args:
      cfg: `config.model` (attention, implementation, num_layers, num_heads, embed_dim, mlp_dim,
        dropout, pooling, dtype, value_encoding).
      vocab_size: genes plus special tokens.
      n_bins: value bins (binned encoding).
      rngs: initialisation keys.
    """

    def __init__(self, cfg, vocab_size: int, n_bins: int, *, rngs: nnx.Rngs):
        if cfg.pooling not in ("cls", "mean"):
            raise ValueError(f"model.pooling: got {cfg.pooling!r}, expected 'cls' or 'mean'")
        if cfg.dtype not in _DTYPES:
            raise ValueError(f"model.dtype: got {cfg.dtype!r}, expected one of {list(_DTYPES)}")
        if cfg.value_encoding not in ("binned", "continuous"):
            raise ValueError(
                f"model.value_encoding: got {cfg.value_encoding!r}, expected 'binned' or 'continuous'"
            )
        dtype = _DTYPES[cfg.dtype]
        e = cfg.embed_dim
        self.pooling, self.binned, self.n_bins = cfg.pooling, cfg.value_encoding == "binned", n_bins
        self.gene_embed = nnx.Embed(vocab_size, e, rngs=rngs)
        if self.binned:
            self.value_embed = nnx.Embed(n_bins + 1, e, rngs=rngs)
            self.head = nnx.Linear(e, n_bins, dtype=dtype, rngs=rngs)
        else:
            self.value_embed = nnx.Linear(1, e, rngs=rngs)
            self.mask_embed = nnx.Param(jnp.zeros((e,)))
            self.head = nnx.Linear(e, 1, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([Block(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.num_layers)])
        self.final_norm = nnx.LayerNorm(e, dtype=dtype, rngs=rngs)
        self.dtype = dtype

    def __call__(
        self,
        genes: Int[Array, "B L"],
        values: Float[Array, "B L"],
        lengths: Int[Array, " B"],
        *,
        value_mask: Bool[Array, "B L"] | None = None,
        dropout_key=None,
    ) -> dict:
        """Returns pred [B, L] (bin logits [B, L, n_bins] when binned), hidden [B, L, E],
        embedding [B, E]. `value_mask` marks the values hidden from the model."""
        if value_mask is None:
            value_mask = jnp.zeros(genes.shape, bool)
        if self.binned:
            bins = jnp.where(value_mask, self.n_bins, values.astype(jnp.int32))
            x = _lookup(self.gene_embed, genes) + _lookup(self.value_embed, bins)
        else:
            v = jnp.where(value_mask, 0.0, values)[..., None]
            x = _lookup(self.gene_embed, genes) + self.value_embed(v)
            x = jnp.where(value_mask[..., None], x + self.mask_embed[...], x)
        x = x.astype(self.dtype)
        keys = jax.random.split(dropout_key, len(self.blocks)) if dropout_key is not None else None
        for i, block in enumerate(self.blocks):
            x = block(x, lengths, None if keys is None else keys[i])
        hidden = self.final_norm(x)
        pred = self.head(hidden).astype(jnp.float32)
        if not self.binned:
            pred = pred[..., 0]
        return {"pred": pred, "hidden": hidden, "embedding": self.pool(hidden, lengths)}

    def pool(self, hidden, lengths):
        if self.pooling == "cls":
            return hidden[:, 0].astype(jnp.float32)
        pos = jnp.arange(hidden.shape[1])[None, :]
        valid = (pos >= 1) & (pos < lengths[:, None])  # Genes only, CLS excluded.
        total = jnp.sum(jnp.where(valid[..., None], hidden.astype(jnp.float32), 0.0), axis=1)
        return total / jnp.maximum(valid.sum(axis=1, keepdims=True), 1)

    def embed(self, genes, values, lengths) -> Float[Array, "B E"]:
        """The cell embedding (CLS or mean of valid gene tokens, per `model.pooling`)."""
        return self(genes, values, lengths)["embedding"]
