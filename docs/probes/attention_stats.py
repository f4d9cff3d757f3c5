"""Residual-stream and attention-weight statistics of trained runs (probe script, CPU is enough).

Usage: python docs/probes/attention_stats.py RUN_DIR [RUN_DIR ...]

For one validation batch of 8 cells: per block, the RMS of the attention branch, the MLP branch and
the residual stream after the block; the attention weights' sum per query and head (sigmoid:
sigmoid(s - log n), softmax: 1), the share of weights above 0.9, and the mean of w (1 - w).
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from sigjax.data import CellLoader, make_datasets
from sigjax.training import load_model


def stats(workdir: str) -> None:
    model, cfg, vocab = load_model(workdir)
    _, val, _ = make_datasets(cfg.data, vocab)
    batch = next(iter(CellLoader(val, batch_size=8, seed=0, max_len=cfg.data.max_len)))
    genes, values, lengths = (jnp.asarray(batch[k]) for k in ("genes", "values", "lengths"))
    valid = jnp.arange(genes.shape[1])[None] < lengths[:, None]  # [B, L]
    pair = valid[:, None, :, None] & valid[:, None, None, :]  # [B, 1, T, S]

    def rms(t):
        t = jnp.where(valid[..., None], t.astype(jnp.float32), 0)
        return float(jnp.sqrt(jnp.sum(t**2) / (valid.sum() * t.shape[-1])))

    table = model.gene_embed.embedding[...]
    x = table[genes] + model.value_embed.embedding[...][values.astype(jnp.int32)]
    print(f"{workdir} ({cfg.model.attention}): embedding RMS {rms(x):.3f}")
    for i, blk in enumerate(model.blocks):
        h = blk.attention_norm(x)
        b, length, e = h.shape
        n = blk.attention.num_heads
        qkv = blk.attention.qkv(h).reshape(b, length, 3, n, e // n).astype(jnp.float32)
        s = jnp.einsum("btnh,bsnh->bnts", qkv[:, :, 0], qkv[:, :, 1]) / np.sqrt(e // n)
        if cfg.model.attention == "sigmoid":
            w = jax.nn.sigmoid(s - jnp.log(lengths)[:, None, None, None])
        else:
            w = jax.nn.softmax(jnp.where(pair, s, -1e9), axis=-1)
        w = jnp.where(pair, w, 0.0)
        count = jnp.sum(pair) * n
        att = blk.attention(h, lengths)
        if getattr(blk, "attention_output_norm", None) is not None:
            att = blk.attention_output_norm(att)
        x = x + att
        mlp = blk.mlp(blk.mlp_norm(x))
        x = x + mlp
        print(
            f"  block {i}: attention RMS {rms(att):.3f}, MLP RMS {rms(mlp):.3f}, residual RMS "
            f"{rms(x):.3f}; weight sum per query and head "
            f"{float(jnp.sum(w) / (jnp.sum(valid) * n)):.2f}, weights > 0.9: "
            f"{float(jnp.sum((w > 0.9) & pair) / count):.3f}, mean w(1-w) "
            f"{float(jnp.sum(w * (1 - w)) / count):.4f}"
        )


if __name__ == "__main__":
    for run in sys.argv[1:]:
        stats(run)
