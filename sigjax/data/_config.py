"""Data configuration and the train/validation data sets it describes."""

import hashlib
import logging
import math

import numpy as np

from sigjax.data._tokenize import (
    BIN_TIES,
    GENE_SELECTIONS,
    VALUE_ENCODINGS,
    TokenizedCells,
    Vocab,
    select_genes,
    tokenize,
)
from sigjax.data._values import LEGACY_VALUES, VALUES

log = logging.getLogger(__name__)


def default_data_config():
    """Data fields shared by every training config, one comment each.

    Returns:
      ml_collections.ConfigDict.
    """
    import ml_collections  # Inside: importing sigjax.data must not need it.

    c = ml_collections.ConfigDict()
    # A name of sigjax.data.DATASETS, or "pooled" (the `datasets` below, genes matched by symbol).
    c.dataset = "pbmc68k_reduced"
    # An .h5ad file to use instead; for sets read from a package (zeisel, cbmc, pbmc8k, ...) and
    # "pooled", the package archive or a folder holding it (offline machines).
    c.path = ""
    c.datasets = ""  # "pooled": comma-separated names ("" = sigjax.data._pooled.POOLED_DEFAULT).
    c.min_cells = 1  # "pooled": vocabulary = symbols expressed in at least this many cells.
    c.layer = ""  # AnnData layer with counts ("" = X).
    c.use_raw = False  # Take counts from adata.raw.
    # What X holds: "auto" (detected, logged), "counts", "log1p", "log2" (log2(1 + x)) or
    # "normalized" (TPM/CPM).
    c.input_values = "auto"
    c.gene_column = ""  # var column with gene ids ("" = var_names).
    c.label_column = ""  # obs column with cell-type labels ("" = none, named sets bring their own).
    c.backed = False  # Open the .h5ad in backed mode (files larger than memory).
    c.max_len = 512  # Tokens per cell, CLS included; longer cells keep their top-expressed genes.
    c.value_encoding = "binned"  # "binned" (per-cell quantile bins) or "continuous" (log1p).
    c.n_bins = 51  # Value bins for "binned" (bin 0 is reserved).
    c.bin_ties = "random"  # Tied counts: "random" (scGPT; no shortcut) or "average" (old runs).
    c.gene_selection = "top_expressed"  # "top_expressed" | "highly_variable" | "all_expressed".
    c.n_top_genes = 1000  # HVGs kept by gene_selection="highly_variable" (on training cells).
    c.target_sum = 1e4  # Library size after per-cell normalisation.
    c.val_fraction = 0.1  # Fraction of cells held out for validation.
    c.seed = 0  # Seed of the split and the batch order.
    c.batch_size = 32  # Global batch size (cells per step, over all devices).
    c.eval_batch_size = 64  # Batch size for validation and embedding.
    c.bucket_by_length = True  # Batch cells of similar length together.
    c.synthetic = ml_collections.ConfigDict()
    c.synthetic.n_cells = 2000  # Synthetic cells.
    c.synthetic.n_genes = 4000  # Synthetic genes.
    c.synthetic.n_types = 8  # Synthetic cell types.
    c.synthetic.min_genes = 200  # Fewest expressed genes per synthetic cell.
    c.synthetic.max_genes = 1000  # Most expressed genes per synthetic cell.
    c.synthetic.seed = 0  # Seed of the synthetic generator.
    return c


def check_data_config(cfg) -> None:
    """The checks of a data config that read no data, so that a training run refuses a bad value
    before it makes its workdir (`make_datasets` runs them too). Fields a saved config predates
    are checked with the value `tokenize_with` reads them as.

    Args:
      cfg: a data config (`default_data_config()` fields).

    Raises:
      ValueError: naming the first bad field, its value and what was expected.
    """

    def check(name, value, ok: bool, expected: str):
        if not ok:
            raise ValueError(f"data.{name}: got {value!r}, expected {expected}")

    for name, default, choices in (
        ("value_encoding", None, VALUE_ENCODINGS),
        ("input_values", LEGACY_VALUES, VALUES),
        ("bin_ties", "average", BIN_TIES),
        ("gene_selection", "top_expressed", GENE_SELECTIONS),
    ):
        value = cfg.get(name, default)
        check(name, value, value in choices, f"one of {choices}")
    check("max_len", cfg.max_len, int(cfg.max_len) >= 2, "an integer >= 2 (<cls> plus one gene)")
    check("val_fraction", cfg.val_fraction, 0.0 <= cfg.val_fraction < 1.0, "a value in [0, 1)")
    target_sum = float(cfg.target_sum)
    check("target_sum", cfg.target_sum, math.isfinite(target_sum) and target_sum > 0, "> 0")
    # numpy's generators take no negative seed (their error names no field).
    check("seed", cfg.seed, int(cfg.seed) >= 0, "an integer >= 0")
    if cfg.get("gene_selection") == "highly_variable":
        n = cfg.get("n_top_genes", 1000)
        check("n_top_genes", n, int(n) >= 1, "an integer >= 1")


def _package_sets() -> tuple:
    """The named sets read from a package, for which a non-.h5ad `path` is the archive."""
    from sigjax.data._packages import LOADERS

    return ("zeisel", "cbmc", *LOADERS)


def reads_file(cfg) -> bool:
    """Whether `load_from_config(cfg)` reads `cfg.path` with `load_anndata` (which alone uses
    layer, use_raw, gene_column, label_column and backed), rather than building a named set."""
    from sigjax.data._pooled import POOLED

    path = str(cfg.path or "")
    if cfg.dataset == POOLED:
        return path.endswith(".h5ad")
    return path.endswith(".h5ad") or bool(path and cfg.dataset not in _package_sets())


# Fields only `load_anndata` reads, with their unset value. backed is left out: the same cells
# either way (memory only), and resume-safe.
FILE_FIELDS = {"layer": "", "use_raw": False, "gene_column": "", "label_column": ""}


def check_file_fields(cfg) -> None:
    """Refuses a file-reading field (`FILE_FIELDS`) set for data that is not read from a file:
    a named set is built as sigjax builds it, and the value would be ignored without a word.

    Raises:
      ValueError: naming the field, its value and the data set.
    """
    if reads_file(cfg):
        return
    for name, unset in FILE_FIELDS.items():
        value = cfg.get(name, unset)
        if value != unset:
            raise ValueError(
                f"data.{name}: got {value!r} for data.dataset={cfg.dataset!r}, which is not read "
                f"from an .h5ad file (data.path {str(cfg.path or '')!r}) and would ignore it; "
                f"expected {unset!r}, or an .h5ad data.path"
            )


def load_from_config(cfg):
    """The AnnData a data config points at: its file (`path`) or its bundled data set.

    Args:
      cfg: a data config. `path` ending in .h5ad is read with `load_anndata`; for the sets read
        from a package ("zeisel", "cbmc", "pbmc8k", ...), another non-empty `path` is the package
        archive or a folder holding it (offline); for "pooled", a folder holding the archives,
        or an .h5ad of a pooled corpus written before (`pack_pooled`, or
        `pooled_anndata(...).write_h5ad(FILE)`; genes already upper-case symbols), to which
        `min_cells` is applied as the archives' corpus applies it (`restrict_pooled`).

    Returns:
      anndata.AnnData.

    Raises:
      ValueError, FileNotFoundError: see `load_anndata` and `load_dataset`.
    """
    from sigjax.data._anndata import load_anndata, load_dataset
    from sigjax.data._pooled import POOLED, pooled_anndata, restrict_pooled

    path = str(cfg.path or "")
    if cfg.dataset == POOLED and not path.endswith(".h5ad"):
        return pooled_anndata(
            cfg.get("datasets", ""), source=path or None, min_cells=cfg.get("min_cells", 1)
        )
    if reads_file(cfg):
        adata = load_anndata(
            path,
            layer=cfg.layer or None,
            use_raw=cfg.use_raw,
            gene_column=cfg.gene_column or None,
            label_column=cfg.label_column or None,
            backed=cfg.get("backed", False),
        )
        if cfg.dataset == POOLED:
            adata = restrict_pooled(
                adata, cfg.get("datasets", ""), cfg.get("min_cells", 1), f"data.path {path!r}"
            )
        return adata
    if cfg.dataset == "synthetic":
        return load_dataset("synthetic", **cfg.synthetic.to_dict())
    if cfg.dataset in _package_sets():
        return load_dataset(cfg.dataset, source=path or None)
    return load_dataset(cfg.dataset)


def tokenize_with(cfg, adata, vocab: Vocab, input_values: str | None = None) -> TokenizedCells:
    """`tokenize(adata, vocab)` with the config's max_len, value_encoding, n_bins, target_sum,
    input_values, bin_ties and gene_selection ("all_expressed" truncates long cells at random, the
    others keep the highest counts): the one way training, evaluation and embedding read and
    tokenise cells. Configs written before a field existed get the old behaviour.

    Args:
      cfg: a data config; a saved one without `input_values` (a run older than the field) reads
        its values as `LEGACY_VALUES`, as that run's training did.
      adata: AnnData with the values in X.
      vocab: gene vocabulary.
      input_values: overrides `cfg.input_values` (e.g. `python -m eval embed --values`).

    Returns:
      TokenizedCells.
    """
    return tokenize(
        adata,
        vocab,
        max_len=cfg.max_len,
        value_encoding=cfg.value_encoding,
        n_bins=cfg.n_bins,
        target_sum=cfg.target_sum,
        input_values=input_values or cfg.get("input_values", LEGACY_VALUES),
        bin_ties=cfg.get("bin_ties", "average"),
        truncate="random" if cfg.get("gene_selection") == "all_expressed" else "top",
        seed=cfg.seed,
    )


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of n items: a seeded permutation, each part sorted."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_rows(cfg, cells: TokenizedCells) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `cells` (one per AnnData row, as `tokenize_with` returns them) that a run with
    data config `cfg` trains on and holds out. Cells with no gene in the vocabulary carry nothing
    to learn and are in neither (warned).

    Returns:
      (train_rows, val_rows): sorted int arrays.
    """
    kept = np.flatnonzero(cells.lengths > 1)
    if len(kept) < len(cells):
        log.warning("dropping %d cells with no gene in the vocabulary", len(cells) - len(kept))
    train, val = split_indices(len(kept), cfg.val_fraction, cfg.seed)
    return kept[train], kept[val]


def split_fingerprint(train_ids, val_ids) -> dict | None:
    """Which cells a run trained on and held out: counts and SHA-256 hashes of their ids in order
    (`TokenizedCells.cell_ids` of the two parts; None when either is None). Saved with a run, so
    that a resume and `eval score --heldout` can tell a file with other cells, or the same cells
    in another order, from the one the run split.
    """
    if train_ids is None or val_ids is None:
        return None

    def digest(ids) -> str:
        return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()

    return {
        "train_cells": len(train_ids),
        "heldout_cells": len(val_ids),
        "train_ids_sha256": digest(train_ids),
        "heldout_ids_sha256": digest(val_ids),
    }


def make_datasets(cfg, vocab: Vocab | None = None):
    """Train and validation cells (split by cells, deterministic by seed) and the vocabulary.

    With a given `vocab` (resume, or a new data set for a trained model) genes are matched to it
    by id, unknown genes dropped and the match count logged. Cells left without any gene carry
    nothing to learn and are dropped (warned).

    Args:
      cfg: a data config (`default_data_config()` fields).
      vocab: reuse this vocabulary; default: built from the data's genes.

    Returns:
      (train_cells, val_cells, vocab).

    Raises:
      ValueError: bad config values or data (see `load_anndata` and `tokenize`), including no gene
        matching `vocab`.
    """
    check_data_config(cfg)
    adata = load_from_config(cfg)
    selection = cfg.get("gene_selection", "top_expressed")
    if vocab is None and selection == "highly_variable":
        # HVGs from the training cells only (the same split as below when no cell is dropped).
        train_rows, _ = split_indices(adata.n_obs, cfg.val_fraction, cfg.seed)
        genes = select_genes(
            adata[train_rows].to_memory() if adata.isbacked else adata[train_rows],
            selection,
            cfg.n_top_genes,
            cfg.get("input_values", LEGACY_VALUES),
        )
        log.info("gene_selection=highly_variable: %d genes", len(genes))
        vocab = Vocab.from_genes(genes)
    elif vocab is None:
        select_genes(adata, selection, cfg.get("n_top_genes", 1))  # Validates the name.
        vocab = Vocab.from_genes(adata.var_names)
    else:
        matched = int(np.sum(vocab.encode(adata.var_names) >= 0))
        log.info("genes matched to the given vocabulary: %d of %d", matched, adata.n_vars)
    cells = tokenize_with(cfg, adata, vocab)
    train_rows, val_rows = split_rows(cfg, cells)
    val, train = cells.subset(val_rows), cells.subset(train_rows)
    log.info("cells: %d train, %d validation; vocabulary %d", len(train), len(val), vocab.size)
    if not len(val) and cfg.val_fraction > 0:
        log.warning(
            "data.val_fraction=%g of %d cells holds out none; no val/loss is logged",
            cfg.val_fraction,
            len(train),
        )
    return train, val, vocab
