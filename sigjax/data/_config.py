"""Data configuration and the train/validation data sets it describes."""

import logging

import ml_collections
import numpy as np

from sigjax.data._tokenize import TokenizedCells, Vocab, tokenize

log = logging.getLogger(__name__)


def default_data_config() -> ml_collections.ConfigDict:
    """Data fields shared by every training config."""
    c = ml_collections.ConfigDict()
    c.dataset = "pbmc68k_reduced"  # "pbmc68k_reduced" | "zeisel" | "cbmc" | "synthetic"; ignored if path set.
    c.path = ""  # An .h5ad file to train on instead of a named data set.
    c.layer = ""  # AnnData layer with counts ("" = X).
    c.use_raw = False  # Take counts from adata.raw.
    c.gene_column = ""  # var column with gene ids ("" = var_names).
    c.label_column = ""  # obs column with cell-type labels ("" = none, named sets bring their own).
    c.backed = False  # Open the .h5ad in backed mode (files larger than memory).
    c.max_len = 512  # Tokens per cell, CLS included; longer cells keep their top-expressed genes.
    c.value_encoding = "binned"  # "binned" (per-cell quantile bins) or "continuous" (log1p).
    c.n_bins = 51  # Value bins for "binned" (bin 0 is reserved).
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


def load_adata(cfg):
    """The AnnData a data config points at."""
    from sigjax.data._anndata import load_anndata, load_dataset

    if cfg.path:
        return load_anndata(
            cfg.path, layer=cfg.layer or None, use_raw=cfg.use_raw, gene_column=cfg.gene_column or None,
            label_column=cfg.label_column or None, backed=cfg.backed,
        )
    if cfg.dataset == "synthetic":
        return load_dataset("synthetic", **cfg.synthetic.to_dict())
    return load_dataset(cfg.dataset)


def tokenize_with(cfg, adata, vocab: Vocab) -> TokenizedCells:
    return tokenize(
        adata, vocab, max_len=cfg.max_len, value_encoding=cfg.value_encoding, n_bins=cfg.n_bins,
        target_sum=cfg.target_sum,
    )


def make_datasets(cfg, vocab: Vocab | None = None):
    """Train and validation cells (split by cells, deterministic by seed) and the vocabulary.

    Args:
      cfg: a data config (`default_data_config()` fields).
      vocab: reuse this vocabulary (resume, or new data for a trained model); default: built from
        the data's genes.

    Returns:
      (train_cells, val_cells, vocab).

    Raises:
      ValueError: bad config values or data (see `load_anndata` and `tokenize`).
    """
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ValueError(f"data.val_fraction: got {cfg.val_fraction}, expected a value in [0, 1)")
    adata = load_adata(cfg)
    if vocab is None:
        vocab = Vocab.from_genes(adata.var_names)
    cells = tokenize_with(cfg, adata, vocab)
    order = np.random.default_rng(cfg.seed).permutation(len(cells))
    n_val = int(round(len(cells) * cfg.val_fraction))
    val, train = cells.subset(np.sort(order[:n_val])), cells.subset(np.sort(order[n_val:]))
    log.info("cells: %d train, %d validation; vocabulary %d", len(train), len(val), vocab.size)
    return train, val, vocab
