"""Embedding cells with a trained model."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from flax import nnx

from sigjax.data import CellLoader, tokenize_with

log = logging.getLogger(__name__)
EMBEDDING_KEY = "X_sigjax"


def as_counts(adata):
    """Counts, or a per-cell rescaling of them, for tokenisation.

    Raw counts (non-negative integers) are used as they are. Non-integer non-negative values are
    taken as log-normalised (log1p of per-cell normalised counts) and mapped back with expm1: the
    tokeniser normalises each cell to a fixed total anyway, so this gives the same tokens as the raw
    counts would (exactly, for the default binned values, whose per-cell quantile bins are
    invariant to a per-cell scale). Negative values (scaled or centred data) are refused.

    Raises:
      ValueError: negative or non-finite values.
    """
    x = adata.X
    values = x.data if sp.issparse(x) else np.asarray(x)
    if values.size and (not np.all(np.isfinite(values)) or values.min() < 0):
        raise ValueError(
            "--data: X has negative or non-finite values (scaled data?); expected raw counts or "
            "log-normalised values >= 0 (or use a layer/.raw with counts)"
        )
    if values.size and not np.allclose(values, np.round(values)):
        log.info("X is not integer: treating it as log-normalised and applying expm1")
        adata = adata.copy()
        adata.X = adata.X.expm1() if sp.issparse(adata.X) else np.expm1(adata.X)
    return adata


def embed_cells(model, config, cells, batch_size: int | None = None) -> np.ndarray:
    """[C, E] embeddings of tokenised cells, in their order."""
    graphdef, params = nnx.split(model)

    @jax.jit
    def embed(params, genes, values, lengths):
        return nnx.merge(graphdef, params).embed(genes, values, lengths)

    loader = CellLoader(cells, batch_size=batch_size or config.data.eval_batch_size, seed=0,
                        max_len=config.data.max_len, shuffle=False, drop_remainder=False)
    out = [np.asarray(embed(params, *(jnp.asarray(b[k]) for k in ("genes", "values", "lengths"))))
           for b in loader.iter_epoch()]
    return np.concatenate(out, axis=0)


def embed_anndata(workdir, adata, batch_size: int | None = None, key: str = EMBEDDING_KEY):
    """Embeds every cell of `adata` with the latest checkpoint of `workdir`; adds `obsm[key]`.

    Genes are matched to the model's vocabulary by `var_names` (unmatched ones dropped, the count
    logged); no match at all is a ValueError. Returns (adata with the embedding, genes matched).
    """
    from sigjax.training import load_model

    model, config, vocab = load_model(workdir)
    counts = as_counts(adata)
    matched = int(np.sum(vocab.encode(counts.var_names) >= 0))
    print(f"genes matched to the model's vocabulary: {matched} of {counts.n_vars}")
    cells = tokenize_with(config.data, counts, vocab)
    adata = adata.copy()
    adata.obsm[key] = embed_cells(model, config, cells, batch_size)
    return adata, matched
