"""Embedding cells with a trained model (`python -m eval embed`)."""

import logging
import pathlib

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float

from sigjax.data import TokenizedCells, tokenize_with

log = logging.getLogger(__name__)
EMBEDDING_KEY = "X_sigjax"


def is_integer_valued(x) -> bool:
    """Whether every stored value of a dense or sparse matrix is a whole number."""
    values = x.data if sp.issparse(x) else np.asarray(x)
    return bool(np.all(np.mod(values, 1.0) == 0))


def as_counts(adata):
    """The AnnData to tokenise: raw counts as they are; log-normalised values mapped back by expm1.

    Detection: X with only whole numbers is raw counts. X with non-integer values >= 0 is taken to
    be log-normalised, log1p(count_g / total * s) with a per-cell scale s (scanpy's
    `normalize_total` + `log1p`, natural log), and expm1 turns it back into count_g * s/total. We
    expm1 rather than tokenise the values as they are because the tokeniser itself normalises each
    cell to `target_sum` and takes log1p: expm1 then gives exactly the tokens (genes, their order
    and values, binned or continuous) that the raw counts would, since a per-cell scale cancels in
    the normalisation. Tokenising log values as counts would log them twice. Values that are
    neither (log2, or data already cut to a few genes before normalising) give approximate tokens.

    Args:
      adata: AnnData with counts or log-normalised values in X (dense or sparse, in memory).

    Returns:
      adata itself when X is integer-valued, else a copy with X = expm1(X).

    Raises:
      ValueError: negative or non-finite values (scaled or centred data: pass counts instead, via
        a layer or `.raw`).
    """
    x = adata.X
    values = x.data if sp.issparse(x) else np.asarray(x)
    if values.size and (not np.all(np.isfinite(values)) or values.min() < 0):
        raise ValueError(
            f"--data: X has negative or non-finite values (min {np.nanmin(values):g}; scaled "
            "data?); expected raw counts or log-normalised values >= 0 (use --layer or --use_raw "
            "for counts)"
        )
    if values.size and not is_integer_valued(x):
        log.info("X is not integer-valued: treating it as log-normalised and applying expm1")
        adata = adata.copy()
        adata.X = adata.X.expm1() if sp.issparse(adata.X) else np.expm1(adata.X)
    return adata


def embed_cells(
    model,
    config,
    cells: TokenizedCells,
    batch_size: int | None = None,
    pooling: str | None = None,
) -> Float[np.ndarray, "C E"]:
    """`model.embed` of every tokenised cell, in the cells' order.

    Runs through `sigjax.training.map_batches`, the loop the validation loss uses too: compiled
    once per model graph and batch shape, then reused by later calls.

    Args:
      model: a `CellEncoder`.
      config: the run's config (`data.eval_batch_size`, `data.max_len` are used).
      cells: tokenised cells.
      batch_size: cells per batch (default `config.data.eval_batch_size`).
      pooling: "cls" or "mean"; None = the model's own (`model.config.pooling`). The model is
        not changed.

    Returns:
      float32 embeddings [C, E].

    Raises:
      ValueError: batch_size < 1, or an unknown pooling.
    """
    from sigjax.training import map_batches

    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size}, expected >= 1 (or None)")
    out = map_batches(
        model,
        cells,
        _embed_batch,
        (pooling,),
        batch_size=batch_size or config.data.eval_batch_size,
        max_len=config.data.max_len,
    )
    if not out:
        return np.zeros((0, model.config.embed_dim), np.float32)
    return np.concatenate([np.asarray(x, np.float32) for x in out], axis=0)


def _embed_batch(model, batch, key, pooling):
    del key  # No randomness at embedding time.
    return model.embed(batch["genes"], batch["values"], batch["lengths"], pooling)


def embed_anndata(workdir, adata, batch_size: int | None = None, key: str = EMBEDDING_KEY):
    """Embeds every cell of `adata` with the latest checkpoint of the run in `workdir`.

    Genes are matched to the model's vocabulary by `var_names` (gene symbols or ids, whichever the
    run was trained on); unmatched genes are dropped and the match count printed. Values go
    through `as_counts` (raw counts, or log-normalised values mapped back), then the run's own
    tokenisation (`config.data`: max_len, value_encoding, n_bins, target_sum).

    Args:
      workdir: a training run directory.
      adata: AnnData with counts or log-normalised values in X.
      batch_size: cells per batch (default the run's `data.eval_batch_size`).
      key: `obsm` key written.

    Returns:
      (a copy of adata with `obsm[key]` [C, E], number of genes matched).

    Raises:
      FileNotFoundError: no run or checkpoint in workdir.
      ValueError: no gene matches the vocabulary, or X holds negative values.
    """
    from sigjax.training import load_model

    model, config, vocab = load_model(workdir)
    counts = as_counts(adata)
    matched = int(np.sum(vocab.encode(counts.var_names) >= 0))
    print(
        f"genes matched to the model's vocabulary: {matched} of {counts.n_vars} "
        f"(vocabulary: {vocab.n_genes} genes)"
    )
    if matched == 0:
        raise ValueError(
            f"--data: none of the {counts.n_vars} genes (e.g. {list(counts.var_names[:3])}) is "
            f"in the model's vocabulary (e.g. {vocab.genes[:3]}); expected the same kind of "
            "gene ids (use --gene_column to pick a var column)"
        )
    cells = tokenize_with(config.data, counts, vocab)
    adata = adata.copy()
    adata.obsm[key] = embed_cells(model, config, cells, batch_size)
    return adata, matched


def embed_file(
    workdir,
    data,
    out,
    *,
    batch_size: int | None = None,
    layer: str = "",
    use_raw: bool = False,
    gene_column: str = "",
) -> str:
    """`python -m eval embed`: reads `data` (.h5ad), embeds every cell, writes `out` (.h5ad).

    The input is read with `sigjax.data.load_anndata` (counts from X, a layer or `.raw`; gene ids
    from var_names or a var column); cells without any expressed gene are dropped there (with a
    warning), every other cell is embedded into `obsm["X_sigjax"]`.

    Args:
      workdir: a training run directory.
      data: input .h5ad.
      out: output .h5ad.
      batch_size: cells per batch.
      layer: take values from this layer instead of X.
      use_raw: take values and gene ids from `.raw`.
      gene_column: a var column holding the gene ids to match.

    Returns:
      The output path.

    Raises:
      FileNotFoundError: missing input or run.
      ValueError: see `load_anndata` and `embed_anndata`.
    """
    from sigjax.data import load_anndata

    adata = load_anndata(
        data, layer=layer or None, use_raw=use_raw, gene_column=gene_column or None
    )
    embedded, _ = embed_anndata(workdir, adata, batch_size)
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    embedded.write_h5ad(out)
    print(f"wrote {out} with obsm['{EMBEDDING_KEY}'] {embedded.obsm[EMBEDDING_KEY].shape}")
    return str(out)
