"""Synthetic cells for long sequences: cell-type expression programs and negative-binomial counts."""

import numpy as np
import scipy.sparse as sp


def synthetic_anndata(
    n_cells: int = 1000,
    n_genes: int = 2000,
    n_types: int = 8,
    min_genes: int = 200,
    max_genes: int = 1000,
    seed: int = 0,
    markers_per_type: int = 50,
    dispersion: float = 0.5,
):
    """Labelled synthetic counts with a chosen range of expressed genes per cell.

    Each cell type has a log-mean program: a shared gene baseline, N(0, 1.5), plus +2.5 on its
    own marker genes. A cell draws how many genes it expresses, g ~ U[min_genes, max_genes]; which
    genes, by sampling without replacement with probability proportional to the program's mean
    (Gumbel top-g); and their counts as 1 + a gamma-Poisson (negative binomial, mean exp(program),
    inverse dispersion 1/dispersion) draw, so exactly g genes are non-zero and counts are overdispersed.

    Args:
      n_cells, n_genes, n_types: sizes.
      min_genes, max_genes: range of expressed genes per cell (max_genes <= n_genes).
      seed: random seed; equal seeds give equal data.
      markers_per_type: marker genes per type.
      dispersion: negative-binomial dispersion (variance = mean + dispersion * mean^2).

    Returns:
      anndata.AnnData (CSR float32 counts, genes `syn_gene_{i}`, `obs["cell_type"]` = `type_{k}`).

    Raises:
      ValueError: inconsistent sizes.
    """
    import anndata as ad
    import pandas as pd

    if not 1 <= min_genes <= max_genes <= n_genes:
        raise ValueError(
            f"synthetic: got min_genes={min_genes}, max_genes={max_genes}, n_genes={n_genes}; "
            "expected 1 <= min_genes <= max_genes <= n_genes"
        )
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.5, size=n_genes)
    programs = np.tile(base, (n_types, 1))
    for k in range(n_types):
        programs[k, rng.choice(n_genes, size=min(markers_per_type, n_genes), replace=False)] += 2.5
    types = rng.integers(0, n_types, size=n_cells)
    n_expr = rng.integers(min_genes, max_genes + 1, size=n_cells)
    indptr = np.zeros(n_cells + 1, np.int64)
    indptr[1:] = np.cumsum(n_expr)
    indices = np.empty(indptr[-1], np.int32)
    data = np.empty(indptr[-1], np.float32)
    shape = 1.0 / dispersion
    for start in range(0, n_cells, 256):  # Chunks bound the [cells, genes] Gumbel matrix.
        stop = min(start + 256, n_cells)
        logits = programs[types[start:stop]] + rng.gumbel(size=(stop - start, n_genes))
        order = np.argsort(-logits, axis=1)
        for i, c in enumerate(range(start, stop)):
            genes = np.sort(order[i, : n_expr[c]])
            mean = np.exp(programs[types[c], genes])
            lam = rng.gamma(shape, mean / shape)
            indices[indptr[c] : indptr[c + 1]] = genes
            data[indptr[c] : indptr[c + 1]] = 1 + rng.poisson(lam)
    x = sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"type_{k}" for k in types])})
    obs.index = [f"cell_{i}" for i in range(n_cells)]
    var = pd.DataFrame(index=pd.Index([f"syn_gene_{i}" for i in range(n_genes)], name="gene"))
    return ad.AnnData(X=x, obs=obs, var=var)
