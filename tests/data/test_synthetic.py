"""Synthetic negative-binomial cells: expressed-gene range, labels, determinism, NB shape."""

import numpy as np
import pytest

from sigjax.data import synthetic_anndata


def test_shape_names_range_and_determinism():
    a = synthetic_anndata(
        n_cells=300, n_genes=3000, n_types=5, min_genes=100, max_genes=900, seed=2
    )
    assert a.shape == (300, 3000) and a.X.format == "csr" and a.X.dtype == np.float32
    expressed = np.diff(a.X.indptr)
    assert expressed.min() >= 100 and expressed.max() <= 900
    assert expressed.max() - expressed.min() > 600  # The range is used, not one value.
    assert (a.X.data >= 1).all() and np.array_equal(a.X.data, np.rint(a.X.data))
    assert a.var_names[7] == "syn_gene_7"
    assert set(a.obs["cell_type"]) == {f"type_{k}" for k in range(5)}
    b = synthetic_anndata(
        n_cells=300, n_genes=3000, n_types=5, min_genes=100, max_genes=900, seed=2
    )
    assert (a.X != b.X).nnz == 0 and (a.obs["cell_type"] == b.obs["cell_type"]).all()
    c = synthetic_anndata(
        n_cells=300, n_genes=3000, n_types=5, min_genes=100, max_genes=900, seed=3
    )
    assert c.X.nnz != a.X.nnz or (a.X != c.X).nnz > 0


def test_long_cells_reach_16384():
    a = synthetic_anndata(n_cells=8, n_genes=17000, n_types=2, min_genes=16384, max_genes=16384)
    np.testing.assert_array_equal(np.diff(a.X.indptr), 16384)


def test_negative_binomial_shape():
    # No depth variation and no dropout of the chosen gene: its counts are gamma-Poisson
    # (NB(mean, dispersion)) given >= 1, which at this mean is the NB itself.
    a = synthetic_anndata(
        n_cells=3000,
        n_genes=400,
        n_types=1,
        min_genes=300,
        max_genes=300,
        seed=0,
        dispersion=0.2,
        depth_sd=0.0,
    )
    x = a.X.toarray()
    means = x.mean(axis=0)
    g = int(np.argsort(means)[-5])  # A highly expressed gene (nearly always detected).
    v = x[:, g]
    assert (v > 0).mean() > 0.99
    m, var = v.mean(), v.var()
    assert var > 2 * m  # Overdispersed, unlike Poisson.
    np.testing.assert_allclose((var - m) / m**2, 0.2, rtol=0.2)  # var = m + phi m^2.
    high = means > 5
    assert (x[:, high].var(axis=0) > x[:, high].mean(axis=0)).all()


def test_cell_types_differ():
    a = synthetic_anndata(n_cells=400, n_genes=1000, n_types=2, min_genes=300, max_genes=400)
    x = np.log1p(a.X.toarray())
    t = a.obs["cell_type"].to_numpy()
    diff = x[t == "type_0"].mean(axis=0) - x[t == "type_1"].mean(axis=0)
    assert np.sort(np.abs(diff))[-20:].min() > 1.0  # Marker genes separate the two types.


def test_errors():
    with pytest.raises(ValueError, match="min_genes=500, max_genes=100"):
        synthetic_anndata(n_genes=1000, min_genes=500, max_genes=100)
    with pytest.raises(ValueError, match="max_genes=2000, n_genes=1000"):
        synthetic_anndata(n_genes=1000, min_genes=10, max_genes=2000)
    with pytest.raises(ValueError, match="synthetic.dispersion: got 0"):
        synthetic_anndata(n_genes=100, min_genes=10, max_genes=20, dispersion=0)


@pytest.mark.parametrize("rate", [0.05, 0.7, 3.0])
def test_positive_poisson_matches_rejection(rate):
    # With a near-constant gamma rate, the sampler must be Poisson(rate) given >= 1.
    from sigjax.data._synthetic import _positive_gamma_poisson

    rng = np.random.default_rng(0)
    ours = _positive_gamma_poisson(rng, np.full(200_000, rate), shape=1e7)
    ref = rng.poisson(rate, 2_000_000)
    ref = ref[ref > 0]
    assert ours.min() == 1
    for k in (1, 2, 3, 4):
        assert abs((ours == k).mean() - (ref == k).mean()) < 0.006
