"""CellEncoder: a bidirectional pre-LayerNorm transformer over a cell's expressed genes."""

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Bool, Float, Int

from sigjax.attention._sharding import explicit_sharding
from sigjax.model._config import POOLINGS, READOUTS, EncoderConfig
from sigjax.model._layers import Mlp, SelfAttention

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# The vocabulary's leading special tokens (<pad>, <cls>, <mask>: `sigjax.data.SPECIALS`, checked
# by a test; not imported, so that the model does not load the data stack).
N_SPECIAL_TOKENS = 3


def _lookup(embed: nnx.Embed, ids):
    """Embedding rows for ids; the output keeps the ids' batch sharding under explicit meshes."""
    table = embed.embedding[...]
    sharding = explicit_sharding(ids)
    if sharding is None:
        return jnp.take(table, ids, axis=0)
    return table.at[ids].get(out_sharding=P(*sharding.spec, None))


def _dropout(x, rate: float, key):
    if not rate or key is None:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


class ValueMlp(nnx.Module):
    """Continuous value embedding: [..., 1] -> Linear(1, E) -> GELU -> Linear(E, E).

    Args:
      embed_dim: E.
      rngs: initialisation keys.
    """

    def __init__(self, embed_dim: int, *, rngs: nnx.Rngs):
        self.up = nnx.Linear(1, embed_dim, rngs=rngs)
        self.down = nnx.Linear(embed_dim, embed_dim, rngs=rngs)

    def __call__(self, v: Float[Array, "B L 1"]) -> Float[Array, "B L E"]:
        return self.down(jax.nn.gelu(self.up(v)))


class Block(nnx.Module):
    """Pre-LayerNorm block: x + attention(LN(x)), then x + MLP(LN(x)); dropout on both branches.

    With `config.attention_output_norm`, the attention branch is x + LN'(attention(LN(x))).

    Args:
      config: the encoder's config.
      dtype: compute dtype.
      rngs: initialisation keys.
    """

    def __init__(self, config: EncoderConfig, *, dtype, rngs: nnx.Rngs):
        cfg = config
        e = cfg.embed_dim
        self.attention_norm = nnx.LayerNorm(e, dtype=dtype, rngs=rngs)
        self.attention = SelfAttention(
            e,
            cfg.num_heads,
            attention=cfg.attention,
            implementation=cfg.implementation,
            dtype=dtype,
            rngs=rngs,
        )
        self.mlp_norm = nnx.LayerNorm(e, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(e, cfg.mlp_dim, dtype=dtype, rngs=rngs)
        self.dropout = float(cfg.dropout)
        # Optional LayerNorm on the attention branch's output (a "hybrid" pre+post norm). Sigmoid
        # weights are not normalised per query: trained models can sum tens of them to ~1 per
        # query and head, and the attention branch then dominates the residual stream
        # (docs/stability.md); this bounds the branch's scale.
        self.attention_output_norm = (
            nnx.LayerNorm(e, dtype=dtype, rngs=rngs) if cfg.attention_output_norm else None
        )

    def __call__(
        self, x: Float[Array, "B L E"], lengths: Int[Array, " B"], key: jax.Array | None = None
    ) -> Float[Array, "B L E"]:
        """One block; `key` None means no dropout."""
        keys = jax.random.split(key, 2) if key is not None else (None, None)
        # Named scopes put the part of the block into every op's name (profiles, compiled HLO).
        with jax.named_scope("attention_norm"):
            h = self.attention_norm(x)
        with jax.named_scope("attention"):
            att = self.attention(h, lengths)
        if self.attention_output_norm is not None:
            with jax.named_scope("attention_output_norm"):
                att = self.attention_output_norm(att)
        x = x + _dropout(att, self.dropout, keys[0])
        with jax.named_scope("mlp_norm"):
            h = self.mlp_norm(x)
        with jax.named_scope("mlp"):
            h = self.mlp(h)
        return x + _dropout(h, self.dropout, keys[1])


def _call_block(block, x, lengths, key):
    return block(x, lengths, key)


# How each block runs under `EncoderConfig.remat` (see REMATS).
_BLOCK_CALLS = {
    "none": _call_block,
    "full": nnx.remat(_call_block),
    "dots": nnx.remat(_call_block, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable),
}


class CellEncoder(nnx.Module):
    """Gene + value embeddings, `num_layers` blocks, a masked-expression head, a cell embedding.

    Tokens carry no position: a cell is a set of genes, and the order (by expression) must not
    matter. Values are "binned" (an embedding of n_bins + 1 entries, the last one meaning
    "masked"; the head predicts the bin with cross-entropy) or "continuous" (a small MLP 1 -> E -> E
    of the log1p value plus a learned mask vector; the head regresses the value with squared error).

    Args:
      config: the encoder's config (`EncoderConfig.from_config` builds it from a training config).
      rngs: initialisation keys.

    Raises:
      ValueError: an unknown attention or implementation (the other choices are checked by
        `EncoderConfig`).
    """

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
        cfg = config
        dtype = _DTYPES[cfg.dtype]
        e, n_bins = cfg.embed_dim, cfg.n_bins
        self.config = config
        self.pooling, self.binned, self.n_bins = cfg.pooling, cfg.value_encoding == "binned", n_bins
        self.gene_embed = nnx.Embed(cfg.vocab_size, e, rngs=rngs)
        if self.binned:
            self.value_embed = nnx.Embed(n_bins + 1, e, rngs=rngs)
            self.head = nnx.Linear(e, n_bins, dtype=dtype, rngs=rngs)
        else:
            self.value_embed = ValueMlp(e, rngs=rngs)
            self.mask_embed = nnx.Param(jnp.zeros((e,)))
            self.head = nnx.Linear(e, 1, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([Block(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.num_layers)])
        self.final_norm = nnx.LayerNorm(e, dtype=dtype, rngs=rngs)
        # The expression decoder (scGPT's MVC/GEPC): every vocabulary gene's log-normalised value
        # from the cell embedding and the gene's own input embedding. It is the only path from
        # the loss to the cell embedding, so it is what makes the embedding a summary of the cell.
        # Centred over the batch, a per-gene bias cancels out of the loss: its gradient is rounding
        # noise, which Adam would scale up to full-size steps (and which differs with the
        # sharding). So a centred decoder has no bias, and the query none either (a query bias
        # adds <b, gene_embed_g>, again a per-gene constant).
        decoder = cfg.expression_weight > 0
        query = nnx.Linear(e, e, use_bias=False, rngs=rngs) if decoder else None
        self.expression_query = nnx.data(query)
        self.expression_bias = nnx.data(
            nnx.Param(jnp.zeros((cfg.vocab_size,)))
            if decoder and not cfg.expression_center
            else None
        )
        self.dtype = dtype
        self.dropout = float(cfg.dropout)

    def __call__(
        self,
        genes: Int[Array, "B L"],
        values: Float[Array, "B L"],
        lengths: Int[Array, " B"],
        *,
        value_mask: Bool[Array, "B L"] | None = None,
        deterministic: bool = True,
        dropout_key: jax.Array | None = None,
    ) -> dict:
        """Encodes a batch of cells.

        Args:
          genes: gene ids (0 = pad, position 0 = CLS).
          values: bin indices (binned) or log1p values (continuous); 0 at CLS and pad.
          lengths: valid tokens of each cell, CLS included.
          value_mask: True where the value is hidden from the model (the objective's targets).
          deterministic: no dropout when True (evaluation).
          dropout_key: PRNG key for dropout; required when deterministic=False and
            model.dropout > 0.

        Returns:
          dict with "pred" [B, L] (the predicted value: the expected bin index under the bin
          distribution when binned, the regressed log1p value when continuous), "logits"
          [B, L, n_bins] (binned only; the cross-entropy targets), "hidden" [B, L, E] (after the
          final LayerNorm) and "embedding" [B, E] (float32).

        Raises:
          ValueError: deterministic=False with dropout > 0 and no dropout_key.
        """
        if not deterministic and self.dropout and dropout_key is None:
            raise ValueError(
                "dropout_key: got None with deterministic=False and model.dropout="
                f"{self.dropout}; expected a PRNG key"
            )
        if deterministic or not self.dropout:
            dropout_key = None
        if value_mask is None:
            value_mask = jnp.zeros(genes.shape, bool)
        if self.binned:
            # Index n_bins is the extra "masked" row of the value table.
            bins = jnp.where(value_mask, self.n_bins, values.astype(jnp.int32))
            x = _lookup(self.gene_embed, genes) + _lookup(self.value_embed, bins)
        else:
            v = jnp.where(value_mask, 0.0, values)[..., None]
            x = _lookup(self.gene_embed, genes) + self.value_embed(v)
            x = jnp.where(value_mask[..., None], x + self.mask_embed[...], x)
        x = x.astype(self.dtype)
        keys = None if dropout_key is None else jax.random.split(dropout_key, len(self.blocks))
        call = _BLOCK_CALLS[self.config.remat]
        for i, block in enumerate(self.blocks):
            with jax.named_scope(f"block_{i}"):
                x = call(block, x, lengths, None if keys is None else keys[i])
        hidden = self.final_norm(x)
        out = self.head(hidden).astype(jnp.float32)
        result = {"hidden": hidden, "embedding": self.pool(hidden, lengths)}
        if self.binned:
            bin_ids = jnp.arange(self.n_bins, dtype=jnp.float32)
            result["logits"] = out
            result["pred"] = jnp.sum(jax.nn.softmax(out, axis=-1) * bin_ids, axis=-1)
        else:
            result["pred"] = out[..., 0]
        return result

    def _require_decoder(self, purpose: str) -> None:
        """Raises ValueError (naming model.expression_weight and `purpose`) without a decoder."""
        if self.expression_query is None:
            raise ValueError(
                "model.expression_weight: got 0 (no expression decoder); expected > 0 " + purpose
            )

    def predict_expression(self, embedding: Float[Array, "B E"]) -> Float[Array, "B V"]:
        """Every vocabulary gene's predicted log-normalised value from the cell embedding:
        <W embedding, gene_embedding_g> + bias_g, one matmul over the vocabulary (float32).

        Raises:
          ValueError: the model was built without the decoder (model.expression_weight = 0).
        """
        self._require_decoder("to predict expression")
        query = self.expression_query(embedding.astype(jnp.float32))
        table = self.gene_embed.embedding[...].astype(jnp.float32)
        pred = query @ table.T
        return pred if self.expression_bias is None else pred + self.expression_bias[...]

    def pool(
        self, hidden: Float[Array, "B L E"], lengths: Int[Array, " B"], pooling: str | None = None
    ) -> Float[Array, "B E"]:
        """The CLS token's hidden state, or the mean over valid gene tokens (float32).

        Args:
          hidden: final hidden states.
          lengths: valid tokens of each cell, CLS included.
          pooling: "cls" or "mean"; None = the model's `config.pooling`.
        """
        pooling = self.pooling if pooling is None else pooling
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: got {pooling!r}, expected one of {list(POOLINGS)}")
        if pooling == "cls":
            return hidden[:, 0].astype(jnp.float32)
        pos = jnp.arange(hidden.shape[1])[None, :]
        valid = (pos >= 1) & (pos < lengths[:, None])  # Genes only, CLS excluded.
        total = jnp.sum(jnp.where(valid[..., None], hidden.astype(jnp.float32), 0.0), axis=1)
        return total / jnp.maximum(valid.sum(axis=1, keepdims=True), 1)

    def readout_map(self) -> Float[Array, "E K"]:
        """The linear map of the "decoder" readout: R with ||(a - b) R|| = ||pred(a) - pred(b)||
        for any two cell embeddings a, b, where pred is `predict_expression` over the
        vocabulary's genes (the special tokens' rows left out; the per-gene bias cancels).

        pred(e) = e K Gᵀ with K the decoder query's kernel [E, E] and G the gene embeddings
        [genes, E]. With the QR decomposition G Kᵀ = Q R, K Gᵀ = Rᵀ Qᵀ and Qᵀ has orthonormal
        rows, so e Rᵀ (K = min(E, genes) values) keeps every distance of the decoded profile: the
        embedding weighs its directions by how much expression they predict, instead of the
        final LayerNorm's equal weights. Measured in docs/probes/recipe.md ("Readout").

        Raises:
          ValueError: the model was built without the decoder (model.expression_weight = 0).
        """
        self._require_decoder("for the decoder readout (or model.readout='pooled')")
        kernel = self.expression_query.kernel[...].astype(jnp.float32)
        genes = self.gene_embed.embedding[...][N_SPECIAL_TOKENS:].astype(jnp.float32)
        return jnp.linalg.qr(genes @ kernel.T, mode="r").T

    def embed(
        self,
        genes: Int[Array, "B L"],
        values: Float[Array, "B L"],
        lengths: Int[Array, " B"],
        pooling: str | None = None,
        readout: str | None = None,
    ) -> Float[Array, "B K"]:
        """The cell embedding, no dropout.

        Args:
          genes: gene ids.
          values: values (see `__call__`).
          lengths: valid tokens of each cell, CLS included.
          pooling: "cls" or "mean"; None = the model's `config.pooling`. Pooling acts only here
            (the training loss does not read the cell embedding), so one trained model can be
            embedded both ways.
          readout: "pooled" (the pooled hidden state, E values) or "decoder" (mapped by
            `readout_map`); None = the model's `config.readout`.

        Raises:
          ValueError: an unknown pooling or readout, or "decoder" without the decoder.
        """
        readout = self.config.readout if readout is None else readout
        if readout not in READOUTS:
            raise ValueError(f"readout: got {readout!r}, expected one of {list(READOUTS)}")
        if pooling is None:
            embedding = self(genes, values, lengths)["embedding"]
        else:
            embedding = self.pool(self(genes, values, lengths)["hidden"], lengths, pooling)
        return embedding @ self.readout_map() if readout == "decoder" else embedding
