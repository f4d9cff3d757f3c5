"""The objective: which value tokens are masked, and the loss of predicting them.

This module defines what the model learns and nothing else; `_steps.py` turns `masked_loss` into
the jitted train step and the validation loss.
"""

import jax
import jax.numpy as jnp
import optax


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
    value_mask = mask_values(key, batch["genes"], batch["lengths"], mask_prob)
    out = model(
        batch["genes"],
        batch["values"],
        batch["lengths"],
        value_mask=value_mask,
        deterministic=dropout_key is None,
        dropout_key=dropout_key,
    )
    if model.binned:
        targets = jnp.clip(batch["values"].astype(jnp.int32), 0, model.n_bins - 1)
        per_token = optax.softmax_cross_entropy_with_integer_labels(out["logits"], targets)
    else:
        per_token = jnp.square(out["pred"] - batch["values"])
    count = jnp.sum(value_mask)
    loss = jnp.sum(jnp.where(value_mask, per_token, 0.0)) / jnp.maximum(count, 1)
    return loss, count
