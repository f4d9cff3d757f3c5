"""The objective: what the model learns, and nothing else.

Three terms: masked values (which value tokens are hidden, and the loss of predicting them),
whole-cell expression predicted from the cell embedding (the term that trains the embedding),
and an optional contrastive term between two masked views of each cell's embedding.
`_steps.py` turns `objective_loss` into the jitted train step and the validation loss.
"""

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from sigjax.attention._sharding import explicit_sharding


def mask_values(key, genes, lengths, mask_prob: float):
    """Boolean [B, L]: each valid gene token (CLS and padding excluded) is masked w.p. mask_prob.

    Args:
      key: PRNG key.
      genes: int [B, L] gene ids.
      lengths: int [B] valid tokens (CLS included).
      mask_prob: masking probability.

    Returns:
      bool [B, L] mask.
    """
    pos = jnp.arange(genes.shape[1])[None, :]
    candidates = (pos >= 1) & (pos < lengths[:, None])
    return candidates & jax.random.bernoulli(key, mask_prob, genes.shape)


def masked_loss(model, batch, key, mask_prob: float, dropout_key=None):
    """Mean loss over masked tokens: cross-entropy over bins, or squared error on log1p values.

    Args:
      model: a `CellEncoder`.
      batch: dict with "genes", "values", "lengths" (the batch contract).
      key: PRNG key of the masks.
      mask_prob: masking probability.
      dropout_key: PRNG key for dropout; None = deterministic.

    Returns:
      (loss, number of masked tokens).
    """
    out, value_mask = _masked_forward(model, batch, key, mask_prob, dropout_key)
    return _masked_term(model, out, batch, value_mask)


def _masked_forward(model, batch, key, mask_prob: float, dropout_key):
    """The model's forward pass with a random `mask_prob` of the value tokens hidden."""
    value_mask = mask_values(key, batch["genes"], batch["lengths"], mask_prob)
    out = model(
        batch["genes"],
        batch["values"],
        batch["lengths"],
        value_mask=value_mask,
        deterministic=dropout_key is None,
        dropout_key=dropout_key,
    )
    return out, value_mask


def expression_targets(batch, vocab_size: int):
    """Dense log-normalised expression [B, V] of each cell over the vocabulary: the token's
    `targets` at its gene, 0 for every gene the cell does not carry (not expressed; or, in a cell
    cut at max_len, expressed below the cut: small values, taken as 0).

    Args:
      batch: dict with "genes", "lengths" and "targets" (log-normalised values per token).
      vocab_size: V.

    Returns:
      float32 [B, V]; the special tokens' columns are 0.
    """
    genes, lengths = batch["genes"], batch["lengths"]
    pos = jnp.arange(genes.shape[1])[None, :]
    valid = (pos >= 1) & (pos < lengths[:, None])
    # Invalid positions write 0 into column 0 (<pad>), which the loss ignores.
    cols = jnp.where(valid, genes, 0)
    vals = jnp.where(valid, batch["targets"], 0.0).astype(jnp.float32)
    shape = (genes.shape[0], vocab_size)
    sharding = explicit_sharding(genes)
    if sharding is None:
        rows = jnp.broadcast_to(jnp.arange(genes.shape[0])[:, None], genes.shape)
        return jnp.zeros(shape, jnp.float32).at[rows, cols].set(vals)
    # Under an explicit mesh every operand of the scatter carries the batch's sharding.
    spec = P(sharding.spec[0], None)
    rows = jax.lax.broadcasted_iota(jnp.int32, genes.shape, 0, out_sharding=sharding)
    zeros = jnp.zeros(shape, jnp.float32, out_sharding=spec)
    return zeros.at[rows, cols].set(vals, out_sharding=spec)


def info_nce(a, b, temperature: float):
    """Symmetric InfoNCE between two views of the same cells: row i of `a` and row i of `b` are a
    positive pair, the batch's other cells the negatives.

    Both views are L2-normalised; the logits are their cosine similarities / temperature, and the
    loss is the mean of the cross-entropy of each view's cells against the other view's (a -> b
    and b -> a).

    Args:
      a: float [B, E] cell embeddings of the first view.
      b: float [B, E] the same cells' embeddings in the second view.
      temperature: > 0.

    Returns:
      float32 scalar; log(B) for views that carry no information about which cell is which.
    """

    def unit(x):
        x = x.astype(jnp.float32)
        return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)

    a, b = unit(a), unit(b)
    sharding = explicit_sharding(a)
    sharded = sharding is not None

    def one_way(q, k):
        # Each (batch-sharded) query row scores every cell of the other view: gather the keys.
        k_all = jax.sharding.reshard(k, P()) if sharded else k
        logits = q @ k_all.T / temperature  # [B, B]
        if sharded:
            labels = jax.lax.broadcasted_iota(
                jnp.int32, q.shape[:1], 0, out_sharding=P(sharding.spec[0])
            )
        else:
            labels = jnp.arange(q.shape[0])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    return 0.5 * (one_way(a, b) + one_way(b, a))


def objective_loss(model, batch, key, dropout_key=None):
    """The configured objective: masked_weight * masked loss + expression_weight * expression loss
    + contrastive_weight * contrastive loss.

    Both terms come from one forward pass with the masked values hidden from the input. The
    masked loss is `masked_loss`'s (cross-entropy over bins, or squared error on log1p values).
    The expression loss is the mean squared error, over all cells and all vocabulary genes (the
    cell's unexpressed genes included, target 0), of `model.predict_expression(embedding)`
    against `expression_targets` (with model.expression_center, both centred over the batch's
    cells gene by gene): a denoising autoencoder through the cell embedding, which is
    what trains that embedding (the masked loss alone never reaches it). With
    model.expression_weight = 0 (the default of configs written before it) this is the old
    masked objective exactly.

    With model.contrastive_weight > 0, a second forward pass of the same batch with its own value
    mask (key fold_in(key, 1); dropout key likewise) gives a second view of each cell, and
    `info_nce` of the two views' pooled embeddings (model.pooling, as `out["embedding"]`) at
    model.contrastive_temperature is added: unlike the expression loss, which asks the
    embedding to reconstruct the cell (a PCA-like objective), it asks only that a cell be told
    apart from the batch's other cells. With the weight at 0 (the default) no second pass runs.

    Args:
      model: a `CellEncoder`; its `config` (EncoderConfig) gives mask_prob, masked_weight,
        expression_weight, expression_center, contrastive_weight and contrastive_temperature.
      batch: dict with "genes", "values", "lengths" (and "targets" for the expression loss).
      key: PRNG key of the masks.
      dropout_key: PRNG key for dropout; None = deterministic.

    Returns:
      (loss, {"masked": masked loss, "expression": expression loss (0 when off), "contrastive":
      contrastive loss (0 when off), "count": masked tokens}).

    Raises:
      ValueError: expression_weight > 0 and the batch has no "targets".
    """
    cfg = model.config
    w_expr, w_mask = float(cfg.expression_weight), float(cfg.masked_weight)
    out, value_mask = _masked_forward(model, batch, key, cfg.mask_prob, dropout_key)
    masked, count = _masked_term(model, out, batch, value_mask)
    expression = jnp.zeros((), jnp.float32)
    if w_expr > 0:
        if "targets" not in batch:
            raise ValueError(
                f"batch: got keys {sorted(batch)} with model.expression_weight={w_expr}; "
                "expected 'targets' (log-normalised values, from TokenizedCells.targets)"
            )
        pred = model.predict_expression(out["embedding"])
        error = pred - expression_targets(batch, pred.shape[-1])
        if cfg.expression_center:
            # Centre prediction and target over the batch's cells, gene by gene: the loss sees
            # only how cells differ (as PCA does), not each gene's mean level, which a bias
            # learning at the Adam step size (~lr per step) would take thousands of steps to fit.
            error = error - jnp.mean(error, axis=0, keepdims=True)
        expression = jnp.mean(jnp.square(error)[:, 3:])  # Specials excluded.
    contrastive = jnp.zeros((), jnp.float32)
    w_con = float(cfg.contrastive_weight)
    if w_con > 0:
        other = None if dropout_key is None else jax.random.fold_in(dropout_key, 1)
        out2, _ = _masked_forward(model, batch, jax.random.fold_in(key, 1), cfg.mask_prob, other)
        contrastive = info_nce(
            out["embedding"], out2["embedding"], float(cfg.contrastive_temperature)
        )
    loss = w_mask * masked + w_expr * expression + w_con * contrastive
    aux = {"masked": masked, "expression": expression, "contrastive": contrastive}
    return loss, {**aux, "count": count}


def _masked_term(model, out, batch, value_mask):
    """Mean masked-token loss of a forward pass `out`, and the number of masked tokens."""
    if model.binned:
        targets = jnp.clip(batch["values"].astype(jnp.int32), 0, model.n_bins - 1)
        per_token = optax.softmax_cross_entropy_with_integer_labels(out["logits"], targets)
    else:
        per_token = jnp.square(out["pred"] - batch["values"])
    count = jnp.sum(value_mask)
    loss = jnp.sum(jnp.where(value_mask, per_token, 0.0)) / jnp.maximum(count, 1)
    return loss, count
