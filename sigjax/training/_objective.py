"""The masked-expression objective and the jitted steps that use it."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx


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


def group_norms(grads: nnx.State, num_layers: int) -> dict:
    """Per-block gradient norms: block i's attention (with its LayerNorm), MLP (with its LayerNorm),
    the embeddings (gene, value, mask), and the head (final LayerNorm and output layer); the groups
    partition the parameters, so their norms combine to the global norm.

    Args:
      grads: gradients with the model's state structure.
      num_layers: blocks in the model.

    Returns:
      {"grad_norm/block_{i}/attention", "grad_norm/block_{i}/mlp", "grad_norm/embed",
      "grad_norm/head"} -> scalar.
    """
    groups = {
        f"grad_norm/block_{i}/{part}": []
        for i in range(num_layers)
        for part in ("attention", "mlp")
    }
    groups["grad_norm/embed"] = []
    groups["grad_norm/head"] = []
    for path, leaf in nnx.to_flat_state(grads):
        keys = [str(getattr(p, "key", p)) for p in path]
        if keys[0] == "blocks":
            part = "attention" if keys[2].startswith("attention") else "mlp"
            groups[f"grad_norm/block_{keys[1]}/{part}"].append(leaf)
        elif keys[0] in ("gene_embed", "value_embed", "mask_embed"):
            groups["grad_norm/embed"].append(leaf)
        else:  # final_norm and head.
            groups["grad_norm/head"].append(leaf)
    return {k: optax.global_norm([getattr(x, "value", x) for x in v]) for k, v in groups.items()}
