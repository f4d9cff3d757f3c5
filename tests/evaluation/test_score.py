"""Embedding scores on fabricated embeddings with known structure."""

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples, silhouette_score

from sigjax.evaluation import SCORE_NAMES, as_counts, pca_baseline, score_embedding


# Every embedding below is 60 cells x 6 features with 3 labels, so scib-metrics' jitted functions
# compile once for the whole module.
def clusters(n_per=20, n_types=3, dim=6, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 5, size=(n_types, dim))
    labels = np.repeat(np.arange(n_types), n_per)
    x = centers[labels] + rng.normal(0, spread, size=(len(labels), dim))
    return x.astype(np.float32), labels


def test_separated_clusters_score_high_and_match_sklearn():
    x, labels = clusters()
    s = score_embedding(x, [f"type_{k}" for k in labels])
    assert set(s) == set(SCORE_NAMES)
    assert s["silhouette"] == pytest.approx(silhouette_score(x, labels), abs=1e-4)
    assert s["silhouette"] > 0.7
    assert s["knn_purity"] == 1.0
    assert s["nmi"] > 0.99 and s["ari"] > 0.99
    assert s["clisi"] > 0.99


def test_shuffled_labels_score_low():
    x, labels = clusters()
    shuffled = np.random.default_rng(1).permutation(labels)
    s = score_embedding(x, shuffled)
    assert s["silhouette"] < 0.05
    assert s["knn_purity"] < 0.55
    assert s["nmi"] < 0.2 and s["ari"] < 0.2


def test_isolated_labels_is_class_balanced_silhouette():
    # Unequal class sizes, so the class-balanced mean differs from the plain silhouette.
    rng = np.random.default_rng(2)
    sizes = [37, 15, 8]
    x = np.concatenate([rng.normal(m, 1, (n, 6)) for m, n in zip((0, 2, -2), sizes, strict=True)])
    labels = np.repeat([0, 1, 2], sizes)
    per_cell = silhouette_samples(x, labels)
    expected = np.mean([per_cell[labels == k].mean() for k in range(3)])
    s = score_embedding(x, labels)
    assert s["isolated_labels"] == pytest.approx(expected, abs=1e-4)
    assert abs(s["isolated_labels"] - s["silhouette"]) > 1e-3


def test_knn_purity_against_brute_force():
    x, labels = clusters(spread=4.0)  # overlapping clusters: purity strictly between 0 and 1
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :15]
    expected = (labels[nearest] == labels[:, None]).mean()
    s = score_embedding(x, labels)
    assert 0.4 < expected < 0.95
    assert s["knn_purity"] == pytest.approx(expected)


def test_unknown_labels_are_left_out():
    x, labels = clusters()
    noise = np.random.default_rng(3).normal(0, 5, size=(10, x.shape[1])).astype(np.float32)
    both = score_embedding(np.concatenate([x, noise]), np.concatenate([labels, np.full(10, -1)]))
    assert both == pytest.approx(score_embedding(x, labels), abs=1e-5)


@pytest.mark.parametrize(
    ("x", "labels", "match"),
    [
        (np.zeros((5, 2)), np.zeros(5), "labels: got 1 label"),
        (np.zeros((5, 2)), np.arange(4), "labels: got 4 labels for 5 cells"),
        (np.zeros(5), np.arange(5), "embedding: got shape"),
        (np.full((4, 2), np.nan), [0, 1, 0, 1], "non-finite"),
    ],
)
def test_bad_inputs_raise(x, labels, match):
    with pytest.raises(ValueError, match=match):
        score_embedding(x, labels)


def test_as_counts_and_pca_baseline():
    import scanpy as sc

    from sigjax.data import synthetic_anndata

    adata = synthetic_anndata(n_cells=60, n_genes=300, n_types=3, min_genes=40, max_genes=120)
    assert as_counts(adata) is adata  # integer counts: used as they are
    lognorm = adata.copy()
    sc.pp.normalize_total(lognorm, target_sum=1e4)
    sc.pp.log1p(lognorm)
    back = as_counts(lognorm).X.toarray()
    counts = adata.X.toarray()
    # expm1 gives the counts up to a per-cell scale (exactly what the tokeniser normalises away).
    np.testing.assert_allclose(
        back / back.sum(1, keepdims=True),
        counts / counts.sum(1, keepdims=True),
        rtol=1e-4,
        atol=1e-7,
    )
    scaled = lognorm.copy()
    sc.pp.scale(scaled)
    with pytest.raises(ValueError, match="negative"):
        as_counts(scaled)
    pca_baseline(adata, n_comps=6)
    assert adata.obsm["X_pca_hvg"].shape == (60, 6)
    # Synthetic types have their own marker genes: the baseline must separate them.
    assert score_embedding(adata.obsm["X_pca_hvg"], adata.obs["cell_type"])["nmi"] > 0.8


def test_pca_baseline_of_float16_counts_equals_that_of_float32():
    from sigjax.data import synthetic_anndata

    adata = synthetic_anndata(n_cells=60, n_genes=300, n_types=3, min_genes=40, max_genes=120)
    adata.X = adata.X.toarray()
    half = adata.copy()
    half.X = half.X.astype(np.float16)  # Whole counts below 2048 are exact in float16.
    pca_baseline(adata, n_comps=6)
    pca_baseline(half, n_comps=6)
    np.testing.assert_allclose(half.obsm["X_pca_hvg"], adata.obsm["X_pca_hvg"], atol=1e-3)


@pytest.mark.parametrize(
    ("x", "labels"),
    [
        ([[0, 0], [1, 0], [5, 5]], ["a", "a", "b"]),  # 3 cells: was 3.0
        ([[0, 0], [1, 0], [5, 5], [5, 6]], ["a", "a", "b", "b"]),
        ([[0, 0], [0, 1], [9, 9], [9, 8], [4, 4]], ["a", "a", "b", "b", "c"]),
    ],
)
def test_clisi_stays_in_range_with_few_cells(x, labels):
    s = score_embedding(np.asarray(x, np.float32), labels)
    assert 0.0 <= s["clisi"] <= 1.0


def test_clisi_few_cells_value_and_many_cells_unchanged():
    import scib_metrics

    from sigjax.evaluation._score import _neighbors

    # 3 cells, perplexity 2 over both other cells: the a-cells see one a and one b (LISI 2), the
    # b-cell sees two a (LISI 1); median 2 -> (2 - 2) / (2 - 1) = 0.
    s = score_embedding(np.asarray([[0, 0], [1, 0], [5, 5]], np.float32), ["a", "a", "b"])
    assert s["clisi"] == pytest.approx(0.0, abs=1e-4)
    # With 31+ cells the score is scib-metrics' own clisi_knn (perplexity 10).
    x, labels = clusters(spread=4.0)
    expected = float(scib_metrics.clisi_knn(_neighbors(x, 30), labels))
    assert 0.0 < expected < 1.0
    assert score_embedding(x, labels)["clisi"] == pytest.approx(expected, abs=1e-6)


def test_knn_accuracy_from_reference_cells():
    from sigjax.evaluation._score import knn_accuracy

    x, labels = clusters()
    ref, ref_labels = clusters(seed=0)
    assert knn_accuracy(ref, ref_labels, x, labels) == 1.0
    assert knn_accuracy(ref, np.roll(ref_labels, 20), x, labels) == 0.0  # Wrong reference labels.
    scores = score_embedding(x, labels, ref, ref_labels)
    assert scores["knn_accuracy"] == 1.0 and "knn_accuracy" not in score_embedding(x, labels)
    with pytest.raises(ValueError, match="embeddings"):
        knn_accuracy(ref[:, :3], ref_labels, x, labels)


def test_score_file_names_the_flag_for_a_missing_or_non_anndata_file(tmp_path):
    from sigjax.evaluation import score_file

    with pytest.raises(FileNotFoundError, match="--data: got .*not an existing file"):
        score_file(tmp_path / "none.h5ad", "cell_type", umap=False)
    (tmp_path / "cells.h5ad").write_text("cell,gene\n1,2\n")  # A CSV under an .h5ad name.
    with pytest.raises(ValueError, match="--data: cannot read .* expected an AnnData file"):
        score_file(tmp_path / "cells.h5ad", "cell_type", umap=False)


@pytest.mark.parametrize(
    "source", [{"use_raw": True}, {"layer": "counts", "gene_column": "symbol"}]
)
def test_heldout_rows_read_cells_and_genes_where_the_run_read_them(tmp_path, source):
    # X holds half the genes (log-normalised, Ensembl-like ids) and some cells express none of
    # them: only the run's own counts and gene ids give the split its training made.
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from configs import smoke
    from sigjax.data import make_datasets, split_fingerprint
    from sigjax.evaluation._score import heldout_rows
    from sigjax.training._checkpoint import write_run_files

    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, (60, 40)).astype(np.float32)
    counts[:12, ::2] = 0  # Nothing in X's genes for these cells.
    obs = pd.DataFrame({"row": [str(i) for i in range(60)]}, index=[f"c{i}" for i in range(60)])
    var = pd.DataFrame({"symbol": [f"S{j}" for j in range(40)]}, index=[f"E{j}" for j in range(40)])
    adata = ad.AnnData(sp.csr_matrix(counts), obs, var)
    adata.raw = adata.copy()
    adata.layers["counts"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.log1p(counts))
    adata = adata[:, ::2].copy()
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    config = smoke.get_config()
    config.data.update(path=str(path), label_column="row", val_fraction=0.3, **source)
    train, val, vocab = make_datasets(config.data)
    write_run_files(config, tmp_path, vocab, split_fingerprint(train.cell_ids, val.cell_ids))
    train_rows, val_rows = heldout_rows(tmp_path, ad.read_h5ad(path))
    rows = adata.obs["row"].to_numpy()
    assert set(rows[val_rows]) == {val.label_names[i] for i in val.labels}
    assert set(rows[train_rows]) == {train.label_names[i] for i in train.labels}
    # The same cells in another order, or a subset: the rows would name other cells.
    order = np.random.default_rng(1).permutation(adata.n_obs)
    for other in (adata[order], adata[:-5]):
        other.copy().write_h5ad(tmp_path / "other.h5ad")
        with pytest.raises(ValueError, match="--heldout: the cells of --data are not those"):
            heldout_rows(tmp_path, ad.read_h5ad(tmp_path / "other.h5ad"))


def test_score_file_heldout_of_a_run_that_held_out_no_cell(tmp_path):
    from configs import smoke
    from sigjax.data import Vocab, synthetic_anndata
    from sigjax.evaluation import score_file
    from sigjax.training._checkpoint import write_run_files

    adata = synthetic_anndata(n_cells=4, n_genes=50, n_types=2, min_genes=10, max_genes=20)
    adata.obsm["X_sigjax"] = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    path = tmp_path / "emb.h5ad"
    adata.write_h5ad(path)
    config = smoke.get_config()
    config.data.update(path=str(path), val_fraction=0.1)  # 4 cells: none held out.
    write_run_files(config, tmp_path, Vocab.from_genes(adata.var_names))
    with pytest.raises(ValueError, match="--heldout: .* held out no cell"):
        score_file(path, "cell_type", umap=False, heldout=tmp_path)
