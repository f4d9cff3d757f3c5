"""Embedding cells with a trained model: `embed` (AnnData in memory) and `python -m eval embed`.

Values are read by the training path itself (`sigjax.data.tokenize_with`, `sigjax.data._values`):
the run's saved `data.input_values` (or an override) decides how X is read, so a file gives the
same tokens at training and at embedding time.
"""

import logging
import os
import pathlib
import stat
import tempfile

import numpy as np
from jaxtyping import Float

from sigjax.data import LEGACY_VALUES, TokenizedCells, tokenize_with
from sigjax.data._anndata import RAW_HINT, column_gene_ids, layer_names
from sigjax.data._values import (
    LOGGED,
    VALUES,
    check_values,
    resolve_values,
    to_count_scale,
    value_stats,
)

log = logging.getLogger(__name__)
EMBEDDING_KEY = "X_sigjax"


def as_counts(adata, values: str = "auto"):
    """The AnnData with values on the count scale, as tokenisation and the PCA baseline need.

    X is read as `values` says (see `sigjax.data._values`; "auto" detects and logs the kind):
    counts and normalised values (TPM, CPM) are returned as they are, logged values are mapped back
    (e^x - 1 or 2^x - 1, float64), which gives the counts up to a per-cell scale that
    normalisation cancels.

    Args:
      adata: AnnData with counts, normalised or logged values in X (in memory).
      values: one of `sigjax.data.VALUES`.

    Returns:
      adata itself unless the values are logged, else a copy on the count scale.

    Raises:
      ValueError: no X, negative or non-finite values (scaled data), or an unknown `values`.
    """
    if adata.X is None:
        raise ValueError("adata.X: got None; expected counts, normalised or log1p values")
    kind = resolve_values(adata.X, values, "adata.X")
    if kind not in LOGGED:
        return adata
    adata = adata.copy()
    adata.X = to_count_scale(adata.X, kind)
    return adata


def _source(adata, layer, use_raw: bool, gene_column):
    """A light AnnData for tokenisation: the chosen values in X, the gene ids as var_names.

    Nothing is copied: X is the AnnData's own matrix (X, a layer or raw.X). Returns it and the hint
    for errors about negative values.
    """
    import anndata as ad
    import pandas as pd

    if use_raw and layer:
        raise ValueError(
            f"--layer/--use_raw: got layer={layer!r} and use_raw=True; expected at most one "
            "source of values"
        )
    if use_raw:
        if adata.raw is None:
            raise ValueError("--use_raw: the AnnData has no .raw; expected one with adata.raw")
        x, var, where = adata.raw.X, adata.raw.var, "adata.raw.X"
    elif layer:
        if layer not in adata.layers:
            raise ValueError(f"--layer: got {layer!r}, expected one of {layer_names(adata)}")
        x, var, where = adata.layers[layer], adata.var, f"adata.layers[{layer!r}]"
    else:
        x, var, where = adata.X, adata.var, "adata.X"
        if x is None:  # Values kept only in layers: X was written empty.
            raise ValueError(
                f"--layer: the AnnData has no X; expected values in X, or --layer naming one of "
                f"its layers {layer_names(adata)}"
            )
    if gene_column:
        if gene_column not in var.columns:
            raise ValueError(
                f"--gene_column: got {gene_column!r}, expected one of {list(var.columns)}"
            )
        genes = pd.Index(column_gene_ids(var, gene_column, where))
    else:
        genes = pd.Index(var.index.astype(str))
    if not genes.is_unique:
        # As `load_anndata` does: a cell must not hold one token twice.
        log.warning(
            "%d duplicate gene ids made unique (suffix -1, -2, ...)", genes.duplicated().sum()
        )
        genes = pd.Index(ad.utils.make_index_unique(genes))
    light = ad.AnnData(
        X=x, obs=pd.DataFrame(index=adata.obs_names.copy()), var=pd.DataFrame(index=genes)
    )
    hint = RAW_HINT if adata.raw is not None and not (use_raw or layer) else ""
    return light, where, hint


def embed_cells(
    model,
    config,
    cells: TokenizedCells,
    batch_size: int | None = None,
    pooling: str | None = None,
    readout: str | None = None,
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
      readout: "pooled" or "decoder" (`CellEncoder.embed`); None = the model's own
        (`model.config.readout`).

    Returns:
      float32 embeddings [C, E].

    Raises:
      ValueError: batch_size < 1, or an unknown pooling or readout.
    """
    from sigjax.training import map_batches

    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size}, expected >= 1 (or None)")
    out = map_batches(
        model,
        cells,
        _embed_batch,
        (pooling, readout),
        batch_size=batch_size or config.data.eval_batch_size,
        max_len=config.data.max_len,
    )
    if not out:
        return np.zeros((0, model.config.embed_dim), np.float32)
    return np.concatenate([np.asarray(x, np.float32) for x in out], axis=0)


def _embed_batch(model, batch, key, pooling, readout):
    del key  # No randomness at embedding time.
    return model.embed(batch["genes"], batch["values"], batch["lengths"], pooling, readout)


def _embed(
    adata, workdir, *, values, layer, use_raw, gene_column, batch_size, pooling, readout=None
):
    """(embedding [C, E], genes matched) of every cell of `adata`; adata is not changed."""
    from sigjax.training import load_model

    if values is not None and values not in VALUES:
        raise ValueError(f"--values: got {values!r}, expected one of {VALUES}")
    source, where, hint = _source(adata, layer, use_raw, gene_column)
    stats = value_stats(source.X)
    check_values(stats, where, hint)  # Before loading the model: bad input fails fast.
    model, config, vocab = load_model(workdir)
    saved = config.data.get("input_values")
    # Resolved here, where the source of the values is known, and passed on to tokenisation.
    kind = resolve_values(source.X, values or saved or LEGACY_VALUES, where, hint, stats)
    matched = int(np.sum(vocab.encode(source.var_names) >= 0))
    print(
        f"genes matched to the model's vocabulary: {matched} of {source.n_vars} "
        f"(vocabulary: {vocab.n_genes} genes)"
    )
    if matched == 0:
        raise ValueError(
            f"--data: none of the {source.n_vars} genes (e.g. {list(source.var_names[:3])}) is "
            f"in the model's vocabulary (e.g. {vocab.genes[:3]}); expected the same kind of "
            "gene ids (use --gene_column to pick a var column)"
        )
    cells = tokenize_with(config.data, source, vocab, input_values=kind)
    return embed_cells(model, config, cells, batch_size, pooling, readout), matched


def embed(
    adata,
    workdir,
    *,
    values: str | None = None,
    layer: str | None = None,
    use_raw: bool = False,
    gene_column: str | None = None,
    batch_size: int | None = None,
    pooling: str | None = None,
    readout: str | None = None,
    key: str = EMBEDDING_KEY,
) -> Float[np.ndarray, "C E"]:
    """Embeds every cell of an AnnData in memory with a trained run, as scanpy tools do.

    Writes `adata.obsm[key]` and changes nothing else; no file is written or read besides the
    run. Genes are matched to the run's vocabulary by `var_names` (or `gene_column`), unmatched
    genes dropped and the match count printed. Values are read and tokenised exactly as the run's
    training read its data (`sigjax.data.tokenize_with`: the run's `data.input_values`, max_len,
    value_encoding, n_bins, target_sum); a cell with no gene in the vocabulary is embedded as an
    empty cell (<cls> alone; warned), so rows always match `adata`.

    Example:
      >>> import scanpy as sc, sigjax.evaluation as ev
      >>> adata = sc.read_h5ad("cells.h5ad")
      >>> ev.embed(adata, "runs/small_sigmoid")  # adata.obsm["X_sigjax"]
      >>> sc.pp.neighbors(adata, use_rep="X_sigjax")

    Args:
      adata: AnnData with counts, normalised (TPM, CPM) or log1p values in X (or the layer/raw).
      workdir: a training run directory.
      values: how to read the values: "auto", "counts", "log1p", "log2" or "normalized" (see
        `sigjax.data._values`); None = the run's saved `data.input_values`.
      layer: read the values from this layer instead of X.
      use_raw: read the values and gene ids from `adata.raw` (everything else stays as it is).
      gene_column: a var column (of `.raw.var` with use_raw) holding the gene ids to match.
      batch_size: cells per batch (default the run's `data.eval_batch_size`).
      pooling: "cls" or "mean"; None = the run's own.
      readout: "pooled" or "decoder" (see `CellEncoder.embed`); None = the run's own
        `model.readout`.
      key: the `obsm` key written.

    Returns:
      float32 embedding [C, E], also stored in `adata.obsm[key]`.

    Raises:
      FileNotFoundError: no run or checkpoint in workdir.
      ValueError: bad arguments, no gene in the vocabulary, or negative or non-finite values
        (scaled data; the message suggests use_raw when `adata.raw` exists).
    """
    embedding, _ = _embed(
        adata,
        workdir,
        values=values,
        layer=layer,
        use_raw=use_raw,
        gene_column=gene_column,
        batch_size=batch_size,
        pooling=pooling,
        readout=readout,
    )
    adata.obsm[key] = embedding
    return embedding


def embed_anndata(workdir, adata, batch_size: int | None = None, key: str = EMBEDDING_KEY):
    """A copy of `adata` with `obsm[key]` from `embed`, and the number of genes matched.

    Args:
      workdir: a training run directory.
      adata: AnnData with counts, normalised or log1p values in X.
      batch_size: cells per batch (default the run's `data.eval_batch_size`).
      key: `obsm` key written.

    Returns:
      (a copy of adata with `obsm[key]` [C, E], number of genes matched).

    Raises:
      FileNotFoundError, ValueError: see `embed`.
    """
    embedding, matched = _embed(
        adata,
        workdir,
        values=None,
        layer=None,
        use_raw=False,
        gene_column=None,
        batch_size=batch_size,
        pooling=None,
    )
    adata = adata.copy()
    adata.obsm[key] = embedding
    return adata, matched


def write_h5ad_atomic(adata, path) -> None:
    """Writes an .h5ad through a temporary file in the same folder and `os.replace`.

    A failure or a kill mid-write leaves the old file (if any) as it was and no temporary file
    behind (after a failure); a file that is replaced keeps its permissions.

    Args:
      adata: the AnnData.
      path: the file written.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        else:  # mkstemp makes 0600 files; a new file gets the usual mode.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        adata.write_h5ad(tmp)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def embed_file(
    workdir,
    data,
    out=None,
    *,
    inplace: bool = False,
    values: str | None = None,
    batch_size: int | None = None,
    layer: str = "",
    use_raw: bool = False,
    gene_column: str = "",
    readout: str | None = None,
) -> str:
    """`python -m eval embed`: embeds every cell of an .h5ad and writes it with obsm["X_sigjax"].

    The file is read whole and written back whole: everything it had (obs, var columns, obsm,
    obsp, uns, layers, raw) is kept, with `use_raw` too, and `obsm["X_sigjax"]` is added (see
    `embed`). The output is written atomically (a temporary file in the same folder, then
    `os.replace`), so an interrupted run never leaves a half-written file, also with `inplace`.

    Args:
      workdir: a training run directory.
      data: input .h5ad.
      out: output .h5ad (exactly one of `out` and `inplace`).
      inplace: write into `data` itself.
      values: one of `sigjax.data.VALUES`; None = the run's `data.input_values`.
      batch_size: cells per batch.
      layer: take values from this layer instead of X.
      use_raw: take values and gene ids from `.raw`.
      gene_column: a var column holding the gene ids to match.
      readout: "pooled" or "decoder"; None = the run's own `model.readout`.

    Returns:
      The path written.

    Raises:
      FileNotFoundError: missing input or run.
      ValueError: both or neither of `out` and `inplace`; see `embed`.
    """
    from sigjax.data._anndata import read_h5ad

    if bool(out) == bool(inplace):
        raise ValueError(
            f"--out/--inplace: got out={out!r}, inplace={inplace}; expected exactly one "
            "(--out=FILE, or --inplace to write into --data)"
        )
    adata = read_h5ad(data, arg="--data")
    embed(
        adata,
        workdir,
        values=values,
        layer=layer or None,
        use_raw=use_raw,
        gene_column=gene_column or None,
        batch_size=batch_size,
        readout=readout,
    )
    target = pathlib.Path(data if inplace else out)
    write_h5ad_atomic(adata, target)
    print(f"wrote {target} with obsm['{EMBEDDING_KEY}'] {adata.obsm[EMBEDDING_KEY].shape}")
    return str(target)
