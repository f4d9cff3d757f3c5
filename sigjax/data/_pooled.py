"""A pooled corpus of several real data sets, genes matched by symbol through one vocabulary.

How genes are matched: by gene symbol, case-folded to upper case (`symbol_key`), so a human gene
and its mouse ortholog share one token when their symbols differ only in case (CD4 / Cd4,
ACTB / Actb), which holds for most one-to-one orthologs. Orthologs named differently in the two
species stay separate tokens; nothing is mapped through an ortholog table. Within one data set,
genes whose symbols fold to the same key (e.g. two Ensembl ids with one symbol) are summed into
one column, so a cell never holds one token twice. A set whose genes carry no symbols (zeisel and
cbmc name genes `zeisel_gene_{i}` / `cbmc_gene_{i}`) cannot be matched and is refused.

The vocabulary is the keys expressed in at least `min_cells` cells of the corpus; genes outside it
are dropped. Training saves it as vocab.json in the run directory, as for any run, and a new set
embedded with the run goes through `fold_genes` and the same vocabulary (`match_to_vocab`):
symbols not in it are dropped, with a count reported.

A machine without the archives trains on the corpus written once as .h5ad (`pack_pooled`, or
`pooled_anndata(...).write_h5ad(FILE)`) and `--config.data.path=FILE`: `restrict_pooled` then
applies the config's `min_cells` to the file's genes, so that the file gives the archives' tokens.
"""

import logging
import os
import pathlib

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

POOLED = "pooled"
# The default corpus: every real set of ../shared/DATA.md that has gene symbols and no labels, so
# that the labelled sets (pbmc68k_reduced, scmark) stay unseen for zero-shot evaluation.
POOLED_DEFAULT = (
    "pbmc8k",
    "dentate_gyrus",
    "choroid_plexus",
    "liao_bal",
    "chung_breast",
    "pbmc3k",
)
NO_SYMBOLS = ("zeisel", "cbmc", "synthetic")  # Genes carry no symbol: no match by symbol.
DATASET_KEY = "dataset"  # obs column naming each pooled cell's data set.
PACKED_KEY = "pooled"  # uns entry of a packed corpus: {"datasets": [...], "min_cells": k}.
_PACK_CHUNK = 1 << 20  # Values per HDF5 chunk of a packed X (each chunk is compressed alone).


def symbol_key(name) -> str:
    """The key a gene symbol is matched by: stripped and upper-cased ("Cd4" -> "CD4")."""
    return str(name).strip().upper()


def parse_datasets(datasets) -> tuple[str, ...]:
    """Data set names from a comma-separated string or a sequence; empty = `POOLED_DEFAULT`.

    Raises:
      ValueError: an unknown name, a set without gene symbols, or a name twice.
    """
    from sigjax.data._anndata import DATASETS

    if isinstance(datasets, str):
        names = tuple(n.strip() for n in datasets.split(",") if n.strip())
    else:
        names = tuple(str(n).strip() for n in datasets)
    names = names or POOLED_DEFAULT
    for n in names:
        if n in NO_SYMBOLS:
            raise ValueError(
                f"data.datasets: got {n!r}, whose genes have no symbols; expected sets with gene "
                f"symbols (any of {[d for d in DATASETS if d not in NO_SYMBOLS]})"
            )
        if n not in DATASETS or n == POOLED:
            raise ValueError(
                f"data.datasets: got {n!r}, expected names from "
                f"{[d for d in DATASETS if d not in NO_SYMBOLS]}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"data.datasets: got {list(names)}, expected each name once")
    return names


def fold_genes(adata, where: str = "data set"):
    """The AnnData with genes keyed by `symbol_key`, columns of one key summed.

    The symbol is `var["gene_symbols"]` when present (loaders of `sigjax.data._packages` keep it
    there, not made unique), else `var_names`.

    Args:
      adata: AnnData with counts in X (in memory).
      where: names the data in log messages.

    Returns:
      A new AnnData (obs copied) with float32 CSR counts and unique upper-case var_names.
    """
    import anndata as ad
    import pandas as pd

    names = adata.var["gene_symbols"] if "gene_symbols" in adata.var.columns else adata.var_names
    keys = pd.Index([symbol_key(n) for n in names])
    uniq, inverse = np.unique(keys.to_numpy(str), return_inverse=True)
    x = sp.csr_matrix(adata.X, dtype=np.float32)
    if len(uniq) < len(keys):
        # One-hot [genes, keys]: X @ M sums the columns that share a key.
        m = sp.csr_matrix(
            (np.ones(len(keys), np.float32), (np.arange(len(keys)), inverse)),
            shape=(len(keys), len(uniq)),
        )
        x = (x @ m).tocsr()
        log.info(
            "%s: %d genes fold to %d symbols (upper case); columns of one symbol summed",
            where,
            len(keys),
            len(uniq),
        )
    else:
        x = x[:, np.argsort(inverse)]  # Columns in key order, as the summed case gives them.
    x.eliminate_zeros()
    return ad.AnnData(X=x, obs=adata.obs.copy(), var=pd.DataFrame(index=pd.Index(uniq)))


def match_to_vocab(adata, vocab, where: str = "data set"):
    """Genes of `adata` folded by symbol (`fold_genes`) and matched to a pooled run's vocabulary.

    Args:
      adata: AnnData with counts in X.
      vocab: the run's `Vocab` (upper-case symbol keys).
      where: names the data in messages.

    Returns:
      (folded AnnData, genes matched, genes in the folded set): symbols not in the vocabulary
      stay in X (they count in each cell's library size, as in training) and are dropped at
      tokenisation.
    """
    folded = fold_genes(adata, where)
    matched = int(np.sum(vocab.encode(folded.var_names) >= 0))
    log.info(
        "%s: %d of %d symbols in the vocabulary; %d dropped",
        where,
        matched,
        folded.n_vars,
        folded.n_vars - matched,
    )
    return folded, matched, folded.n_vars


def load_one(name: str, source=None):
    """`load_dataset(name)`, passing `source` (a folder of package archives) to the sets that
    are read from a package archive."""
    from sigjax.data._anndata import load_dataset

    if source and name not in ("pbmc68k_reduced", "synthetic"):
        return load_dataset(name, source=source)
    return load_dataset(name)


def pooled_anndata(datasets="", *, source=None, min_cells: int = 1):
    """Concatenates named data sets into one corpus, genes matched by symbol (module docstring).

    Args:
      datasets: names, as a comma-separated string or a sequence; "" = `POOLED_DEFAULT`.
      source: a folder holding the package archives (offline); default: the cache.
      min_cells: keep the symbols expressed in at least this many cells of the corpus.

    Returns:
      anndata.AnnData: counts (float32 CSR), upper-case symbols in var_names (the vocabulary's
      genes), `obs["dataset"]` and, where a set has them, `obs["cell_type"]`.

    Raises:
      ValueError: bad names (see `parse_datasets`), min_cells < 1, or no gene left.
    """
    import anndata as ad
    import pandas as pd

    from sigjax.data._anndata import LABEL_KEY

    names = parse_datasets(datasets)
    if int(min_cells) < 1:
        raise ValueError(f"data.min_cells: got {min_cells}, expected an integer >= 1")
    parts = []
    for name in names:
        folded = fold_genes(load_one(name, source), name)
        obs = pd.DataFrame({DATASET_KEY: name}, index=[f"{name}:{c}" for c in folded.obs_names])
        if LABEL_KEY in folded.obs.columns:
            obs[LABEL_KEY] = folded.obs[LABEL_KEY].astype(str).to_numpy()
        folded.obs = obs
        log.info("pooled: %s, %d cells x %d symbols", name, folded.n_obs, folded.n_vars)
        parts.append(folded)
    pooled = ad.concat(parts, axis=0, join="outer", fill_value=0)  # Absent genes count 0.
    pooled.X = sp.csr_matrix(pooled.X, dtype=np.float32)
    pooled.obs[DATASET_KEY] = pd.Categorical(pooled.obs[DATASET_KEY], categories=list(names))
    if LABEL_KEY in pooled.obs.columns:
        labels = pooled.obs[LABEL_KEY]
        pooled.obs[LABEL_KEY] = labels.where(labels.notna()).astype("category")
    expressed = np.asarray((pooled.X > 0).sum(axis=0)).ravel()
    keep = expressed >= int(min_cells)
    if not keep.any():
        raise ValueError(
            f"data.min_cells: got {min_cells}, and no gene is expressed in that many of the "
            f"{pooled.n_obs} cells; expected a smaller value"
        )
    log.info(
        "pooled corpus: %d cells from %d sets, %d symbols (%d dropped: in fewer than %d cells)",
        pooled.n_obs,
        len(names),
        int(keep.sum()),
        int((~keep).sum()),
        min_cells,
    )
    return pooled[:, keep].copy()


def _count_dtype(x) -> np.dtype:
    """The smallest unsigned integer dtype holding the stored values of `x` (a sparse matrix of
    counts) exactly; float32 when a value is not an integer (kept as read)."""
    data = x.data
    if data.size and not np.array_equal(data, np.rint(data)):
        return np.dtype(np.float32)
    top = float(data.max()) if data.size else 0.0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.float32)  # Over 2^32: float32 held it as read.


def pack_pooled(out_path, datasets="", *, source=None, min_cells: int = 1, level: int = 9) -> dict:
    """Writes the pooled corpus as one compact .h5ad that trains exactly as the archives do.

    The file holds `pooled_anndata(datasets, source=source, min_cells=min_cells)` unchanged (same
    cells in the same order, same genes in the same order, same counts, `obs["dataset"]` and, where
    a set has them, `obs["cell_type"]`), stored small: counts as the smallest unsigned integer
    dtype that holds them exactly (uint32 for the default corpus: Smart-seq2 read counts reach
    2.3M), X as CSC (a gene's cells are runs inside one data set: its indices compress ~16%
    smaller than CSR's gene indices per cell), every array gzip-compressed after HDF5's byte
    shuffle, X in chunks of 2^20 values.
    Reading it (`load_anndata`) gives float32 CSR counts equal to the archives' corpus.

    No gene is left out beyond `min_cells`: with `data.gene_selection="top_expressed"` (the pooled
    configs) the vocabulary is every gene of the corpus, and a cell's values depend on all of its
    genes (bins on its ranks among all its expressed genes; the expression targets on its library
    size), including those past its `max_len - 1` tokens. `uns["pooled"]` records the data sets
    and `min_cells`; a run reading the file applies its own `data.min_cells` (`restrict_pooled`),
    so one file packed with min_cells=1 serves configs with any min_cells.

    Args:
      out_path: the .h5ad to write (its folder must exist); replaced atomically if present.
      datasets: names, as a comma-separated string or a sequence; "" = `POOLED_DEFAULT`.
      source: a folder holding the package archives (offline); default: the cache (downloading).
      min_cells: keep the symbols expressed in at least this many cells (>= 1).
      level: gzip level, 1 (fast) to 9 (smallest).

    Returns:
      dict: path, n_cells, n_genes, nnz, dtype (of the stored counts), bytes (of the file),
      datasets, min_cells.

    Raises:
      ValueError: `out_path` not an .h5ad in an existing folder, `level` not in 1..9, or bad
        `datasets` / `min_cells` (see `pooled_anndata`).
    """
    import anndata as ad
    import h5py

    out = pathlib.Path(out_path)
    if out.suffix != ".h5ad":
        raise ValueError(f"out_path: got {str(out_path)!r}, expected a file name ending in .h5ad")
    if not out.parent.is_dir():
        raise ValueError(
            f"out_path: got {str(out_path)!r}, whose folder {str(out.parent)!r} does not exist; "
            "expected a file in an existing folder"
        )
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 9:
        raise ValueError(f"level: got {level!r}, expected an integer gzip level from 1 to 9")
    names = parse_datasets(datasets)  # Before the slow part: bad names fail at once.
    if isinstance(min_cells, bool) or int(min_cells) != min_cells or min_cells < 1:
        raise ValueError(f"min_cells: got {min_cells!r}, expected an integer >= 1")
    corpus = pooled_anndata(names, source=source, min_cells=int(min_cells))
    n_empty = int(np.sum(np.diff(corpus.X.indptr) == 0))
    if n_empty:
        # load_anndata drops cells with no gene: rows after them shift, and with random
        # tie-breaking (seeded by row) their bins can differ from the archives' corpus.
        log.warning(
            "pack_pooled: %d cells have no gene expressed in >= %d cells; reading the file drops "
            "them, so the rows after them are numbered differently than in the archives' corpus",
            n_empty,
            min_cells,
        )
    dtype = _count_dtype(corpus.X)
    x = sp.csc_matrix(corpus.X)
    x = sp.csc_matrix((x.data.astype(dtype), x.indices, x.indptr), shape=x.shape)
    packed = ad.AnnData(obs=corpus.obs, var=corpus.var)  # X is written below.
    packed.uns[PACKED_KEY] = {"datasets": list(names), "min_cells": int(min_cells)}
    compress = {"compression": "gzip", "compression_opts": level, "shuffle": True}
    tmp = out.with_name(out.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        ad.io.write_elem(f, "/", packed, dataset_kwargs=compress)
        # X in anndata's sparse layout (what `write_elem` writes), by hand for the chunks: h5py's
        # default ~80 KB chunks compress X's indices ~9% worse than chunks of 2^20 values.
        group = f.create_group("X")
        group.attrs.update(
            {"encoding-type": "csc_matrix", "encoding-version": "0.1.0", "shape": x.shape}
        )
        for key in ("data", "indices", "indptr"):
            values = getattr(x, key)
            chunk = (max(1, min(values.size, _PACK_CHUNK)),)
            group.create_dataset(key, data=values, chunks=chunk, **compress)
    os.replace(tmp, out)  # A killed run leaves the old file or the new one, never half of it.
    summary = {
        "path": str(out),
        "n_cells": int(packed.n_obs),
        "n_genes": int(packed.n_vars),
        "nnz": int(x.nnz),
        "dtype": str(dtype),
        "bytes": out.stat().st_size,
        "datasets": list(names),
        "min_cells": int(min_cells),
    }
    log.info("pack_pooled: %s", summary)
    return summary


def restrict_pooled(adata, datasets="", min_cells: int = 1, where: str = "data.path"):
    """A pooled corpus read from an .h5ad, as `pooled_anndata(datasets, min_cells=min_cells)`
    builds it from the archives: the genes expressed in fewer than `min_cells` cells dropped.

    A file packed by `pack_pooled` records its data sets and `min_cells` (`uns["pooled"]`); the
    request is checked against them: other data sets, or a smaller `min_cells` (its genes are not
    in the file), cannot be honoured. A file without the record is filtered by `min_cells` only.

    Args:
      adata: the AnnData read from the file (`load_anndata`).
      datasets: the config's `data.datasets` ("" = `POOLED_DEFAULT`).
      min_cells: the config's `data.min_cells`.
      where: names the file in messages.

    Returns:
      `adata`, or the subset of its genes in at least `min_cells` cells (a view when backed).

    Raises:
      ValueError: a request the file cannot honour (see above), or no gene left.
    """
    if int(min_cells) < 1:
        raise ValueError(f"data.min_cells: got {min_cells}, expected an integer >= 1")
    meta = adata.uns.get(PACKED_KEY)
    if meta is not None:
        held = tuple(str(n) for n in meta["datasets"])
        wanted = parse_datasets(datasets)
        if wanted != held:
            raise ValueError(
                f"data.datasets: got {list(wanted)}, but {where} holds the pooled corpus of "
                f"{list(held)}; expected the same sets in the same order (set data.datasets, or "
                "pack the file again)"
            )
        if int(min_cells) < int(meta["min_cells"]):
            raise ValueError(
                f"data.min_cells: got {min_cells}, but {where} was packed with min_cells="
                f"{int(meta['min_cells'])} (genes in fewer cells are not in it); expected "
                f">= {int(meta['min_cells'])}, or a file packed with a smaller min_cells"
            )
    if adata.isbacked:
        expressed = np.zeros(adata.n_vars, np.int64)
        for start in range(0, adata.n_obs, 4096):
            expressed += np.asarray((adata.X[start : start + 4096] > 0).sum(axis=0)).ravel()
    else:
        expressed = np.asarray((adata.X > 0).sum(axis=0)).ravel()
    keep = expressed >= int(min_cells)
    if keep.all():
        return adata
    if not keep.any():
        raise ValueError(
            f"data.min_cells: got {min_cells}, and no gene of {where} is expressed in that many "
            f"of its {adata.n_obs} cells; expected a smaller value"
        )
    log.info(
        "%s: %d of %d symbols in >= %d cells (data.min_cells); the rest dropped",
        where,
        int(keep.sum()),
        adata.n_vars,
        min_cells,
    )
    return adata[:, keep] if adata.isbacked else adata[:, keep].copy()
