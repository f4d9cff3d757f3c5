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
"""

import logging

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
