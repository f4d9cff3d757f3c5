"""The masked-value targets cannot be read off the visible tokens (issue 12, diagnosis 1).

The test form of docs/probes/shortcut.py, on small synthetic cells. Two predictors of a masked
token's bin, no model, both fit on the training cells and scored by cross-entropy (nats) on 15%
of the tokens of held-out cells:

- gene identity alone: P(bin | gene), the gene's bin histogram (add-one smoothed);
- the shortcut: gene identity, the gene's count prior P(count | gene) and the cell's visible
  count-to-bin mapping: P(bin | gene, cell) = sum_c P(c | gene) P(bin | c, cell), where
  P(bin | c, cell) is the histogram of the bins of the cell's visible tokens with count c (or the
  nearest count present), mixed with 1% uniform.

With `bin_ties="average"` all of a cell's tied counts (most of them 1 or 2) share one bin, so the
visible tokens of the same count give a masked token's bin away: the shortcut beats gene identity
by a wide margin, which a model learns instead of biology. With `bin_ties="random"` tied counts
spread over the bins their ranks cover, and the shortcut no longer beats gene identity.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from sigjax.data import Vocab, synthetic_anndata, tokenize

N_BINS = 51  # configs/default.py's data.n_bins.
MAX_COUNT = 32  # Counts above share one prior entry (rare here; keeps the prior small).
MASK_PROB = 0.15


def _cells(adata, bin_ties: str):
    """(columns, bins, counts clipped to MAX_COUNT) of each cell's tokens, <cls> left out.

    Bins come from `tokenize`, as training reads them; counts from X for the same genes.
    """
    vocab = Vocab.from_genes(adata.var_names)
    # max_len above any cell's length: every expressed gene is a token (no truncation).
    cells = tokenize(
        adata, vocab, max_len=adata.n_vars + 1, n_bins=N_BINS, bin_ties=bin_ties, seed=0
    )
    column = np.full(vocab.size, -1)
    column[vocab.encode(adata.var_names)] = np.arange(adata.n_vars)
    x = sp.csr_matrix(adata.X)
    out = []
    for r in range(len(cells)):
        lo, hi = cells.offsets[r] + 1, cells.offsets[r + 1]
        cols = column[cells.genes[lo:hi]]
        counts = np.rint(x[r, cols].toarray().ravel()).astype(np.int64)
        out.append((cols, cells.values[lo:hi].astype(np.int64), np.minimum(counts, MAX_COUNT)))
    return out


def shortcut_cross_entropy(adata, bin_ties: str, seed: int = 0) -> tuple[float, float]:
    """(gene identity alone, shortcut): cross-entropy in nats on the masked tokens of held-out
    cells (30% of the cells; the predictors are fit on the others)."""
    cells = _cells(adata, bin_ties)
    rng = np.random.default_rng(seed)
    held = rng.random(len(cells)) < 0.3
    gene_bins = np.ones((adata.n_vars, N_BINS))  # Add-one smoothing over bins 1..N_BINS-1.
    gene_bins[:, 0] = 0  # Bin 0 is <cls> and padding, never a gene's.
    gene_counts = np.full((adata.n_vars, MAX_COUNT + 1), 1e-3)
    for (cols, bins, counts), h in zip(cells, held, strict=True):
        if not h:
            np.add.at(gene_bins, (cols, bins), 1)
            np.add.at(gene_counts, (cols, counts), 1)
    p_gene = gene_bins / gene_bins.sum(1, keepdims=True)
    p_count = gene_counts / gene_counts.sum(1, keepdims=True)
    uniform = np.full(N_BINS, 1.0 / (N_BINS - 1))
    uniform[0] = 0
    ce_gene = ce_shortcut = 0.0
    n = 0
    for (cols, bins, counts), h in zip(cells, held, strict=True):
        masked = rng.random(len(cols)) < MASK_PROB
        if not h or not masked.any() or masked.all():
            continue
        seen_counts, seen_bins = counts[~masked], bins[~masked]
        present = np.unique(seen_counts)
        # The cell's visible count -> bin histogram; a count not visible borrows the nearest.
        table = np.zeros((MAX_COUNT + 1, N_BINS))
        np.add.at(table, (seen_counts, seen_bins), 1)
        nearest = present[np.abs(np.arange(MAX_COUNT + 1)[:, None] - present[None]).argmin(1)]
        table = table[nearest] / table[nearest].sum(1, keepdims=True)
        target = bins[masked]
        p_short = 0.99 * (p_count[cols[masked]] @ table) + 0.01 * uniform
        ce_shortcut -= np.log(p_short[np.arange(target.size), target]).sum()
        ce_gene -= np.log(p_gene[cols[masked], target]).sum()
        n += target.size
    assert n > 1000, f"only {n} masked tokens; the comparison needs more"
    return ce_gene / n, ce_shortcut / n


@pytest.fixture(scope="module")
def adata():
    return synthetic_anndata(
        n_cells=400, n_genes=500, n_types=5, min_genes=100, max_genes=300, seed=0
    )


def test_the_data_has_the_ties_the_shortcut_needs(adata):
    # Without many tied counts the test below would pass for the wrong reason.
    counts = adata.X.data
    assert np.mean(counts == 1) > 0.2 and np.mean(counts <= 2) > 0.35


def test_average_ties_give_the_target_away(adata):
    ce_gene, ce_shortcut = shortcut_cross_entropy(adata, "average")
    assert ce_shortcut < ce_gene - 0.5, (ce_gene, ce_shortcut)


def test_random_ties_remove_the_shortcut(adata):
    ce_gene, ce_shortcut = shortcut_cross_entropy(adata, "random")
    assert ce_shortcut >= ce_gene, (ce_gene, ce_shortcut)
    # The targets are not noise: the gene still tells something about them (uniform over the
    # N_BINS - 1 gene bins is log 50 = 3.91 nats).
    assert ce_gene < np.log(N_BINS - 1) - 0.05, ce_gene
