"""load_anndata: sources of counts, gene ids and labels; each bad input; backed mode."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sigjax.data import Vocab, load_anndata, load_dataset, tokenize


def _adata(n_cells=40, n_genes=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.poisson(0.8, size=(n_cells, n_genes)).astype(np.float32)
    x[5] = 0  # One cell with no expressed gene.
    obs = pd.DataFrame(
        {"ct": rng.choice(["T", "B", "NK"], n_cells).astype(object)},
        index=[f"c{i}" for i in range(n_cells)],
    )
    obs.loc["c7", "ct"] = np.nan  # One unlabelled cell.
    var = pd.DataFrame(
        {"symbol": [f"SYM{i}" for i in range(n_genes)]}, index=[f"ENSG{i}" for i in range(n_genes)]
    )
    a = ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=var)
    a.layers["counts"] = sp.csr_matrix(x * 2)
    return a


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.h5ad"
    _adata().write_h5ad(path)
    return path


def test_reads_x_drops_empty_cell_and_warns(good, caplog):
    with caplog.at_level(logging.WARNING, logger="sigjax.data"):
        a = load_anndata(good)
    ref = _adata()
    assert a.n_obs == ref.n_obs - 1 and "c5" not in a.obs_names
    assert "dropping 1 of 40 cells" in caplog.text
    assert sp.isspmatrix_csr(a.X) or isinstance(a.X, sp.csr_array)
    assert a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), ref[ref.obs_names != "c5"].X.toarray())
    assert list(a.var_names[:2]) == ["ENSG0", "ENSG1"]
    assert "cell_type" not in a.obs


@pytest.mark.parametrize("backed", [False, True])
def test_layer_gene_column_and_labels(good, backed):
    a = load_anndata(good, layer="counts", gene_column="symbol", label_column="ct", backed=backed)
    ref = _adata()
    keep = ref.obs_names != "c5"
    np.testing.assert_array_equal(a.X.toarray(), 2 * ref.X.toarray()[keep])
    assert list(a.var_names[:2]) == ["SYM0", "SYM1"]
    assert set(a.obs["cell_type"].cat.categories) == {"T", "B", "NK"}
    assert a.obs["cell_type"].isna().sum() == 1  # The unlabelled cell stays unlabelled ...
    cells = tokenize(a, Vocab.from_genes(a.var_names), max_len=64)
    assert cells.labels[list(a.obs_names).index("c7")] == -1  # ... and becomes label -1.
    assert (np.delete(cells.labels, list(a.obs_names).index("c7")) >= 0).all()


@pytest.mark.parametrize("backed", [False, True])
def test_use_raw(tmp_path, backed):
    a = _adata()
    raw = a.copy()
    raw.X = raw.X * 3
    a.raw = raw
    a.X = sp.csr_matrix(np.zeros(a.shape, np.float32))  # X unusable: counts must come from raw.
    a.write_h5ad(tmp_path / "raw.h5ad")
    b = load_anndata(tmp_path / "raw.h5ad", use_raw=True, backed=backed)
    keep = a.obs_names != "c5"
    np.testing.assert_array_equal(b.X[:].toarray(), raw.X.toarray()[keep])


def test_duplicate_gene_ids_made_unique(tmp_path):
    a = _adata()
    a.var["symbol"] = ["G0", "G0"] + [f"G{i}" for i in range(2, a.n_vars)]
    a.write_h5ad(tmp_path / "dup.h5ad")
    b = load_anndata(tmp_path / "dup.h5ad", gene_column="symbol")
    assert b.var_names.is_unique and "G0" in b.var_names


def test_genes_without_an_id_in_the_gene_column_keep_their_var_name(tmp_path, caplog):
    # A symbol column with gaps: "nan", "nan-1", ... would name unrelated genes in other files.
    a = _adata()
    symbols = [f"SYM{i}" for i in range(a.n_vars)]
    symbols[3:6] = [np.nan, np.nan, ""]
    a.var["symbol"] = pd.Categorical(symbols)
    a.write_h5ad(tmp_path / "gaps.h5ad")
    with caplog.at_level(logging.WARNING, logger="sigjax.data"):
        b = load_anndata(tmp_path / "gaps.h5ad", gene_column="symbol")
    assert list(b.var_names[2:7]) == ["SYM2", "ENSG3", "ENSG4", "ENSG5", "SYM6"]
    assert "3 genes have no id in var['symbol']" in caplog.text


def _write(tmp_path, mutate):
    a = _adata()
    mutate(a)
    path = tmp_path / "bad.h5ad"
    a.write_h5ad(path)
    return path


def _set_x(value):
    def mutate(a):
        x = a.X.toarray()
        x[2, 3] = value
        a.X = sp.csr_matrix(x)

    return mutate


@pytest.mark.parametrize(
    "mutate, kwargs, error, message",
    [
        (None, {}, FileNotFoundError, "not an existing file"),
        ("garbage", {}, ValueError, "cannot read"),
        (lambda a: None, {"layer": "spliced"}, ValueError, "data.layer: got 'spliced'"),
        (
            lambda a: None,
            {"label_column": "celltype"},
            ValueError,
            "data.label_column: got 'celltype'",
        ),
        (
            lambda a: None,
            {"gene_column": "gene_ids"},
            ValueError,
            "data.gene_column: got 'gene_ids'",
        ),
        (lambda a: None, {"use_raw": True}, ValueError, "has no .raw"),
        (lambda a: None, {"use_raw": True, "layer": "counts"}, ValueError, "at most one source"),
        (
            lambda a: setattr(a, "X", None),  # Counts only in a layer.
            {},
            ValueError,
            r"data.layer: .* has no X; expected counts in X, or data.layer naming .*'counts'",
        ),
        (_set_x(-1.0), {}, ValueError, "negative counts"),
        (_set_x(np.nan), {}, ValueError, "non-finite counts"),
        (_set_x(np.inf), {}, ValueError, "non-finite counts"),
        (
            lambda a: setattr(a, "X", sp.csr_matrix(a.shape, dtype=np.float32)),
            {},
            ValueError,
            "none of the 40 cells has an expressed gene",
        ),
    ],
)
@pytest.mark.parametrize("backed", [False, True])
def test_bad_input(tmp_path, mutate, kwargs, error, message, backed):
    if mutate is None:
        path = tmp_path / "missing.h5ad"
    elif mutate == "garbage":
        path = tmp_path / "garbage.h5ad"
        path.write_bytes(b"this is not hdf5")
    else:
        path = _write(tmp_path, mutate)
    with pytest.raises(error, match=message):
        load_anndata(path, backed=backed, **kwargs)


def test_backed_equals_in_memory(good):
    mem = load_anndata(good, label_column="ct")
    backed = load_anndata(good, label_column="ct", backed=True)
    assert backed.isbacked and not mem.isbacked
    assert list(backed.obs_names) == list(mem.obs_names)  # Empty cell dropped in both.
    vocab = Vocab.from_genes(mem.var_names)
    a = tokenize(mem, vocab, max_len=16, chunk_size=7)
    b = tokenize(backed, vocab, max_len=16, chunk_size=7)  # Chunks of 7 rows read from disk.
    for field in ("genes", "values", "offsets", "labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.label_names == b.label_names


def test_load_dataset_errors():
    with pytest.raises(ValueError, match="data.dataset: got 'pbmc4k'"):
        load_dataset("pbmc4k")
    with pytest.raises(ValueError, match="got options \\['level'\\]"):
        load_dataset("cbmc", level=2)
    # Files are load_anndata's: a path is not a data set name.
    with pytest.raises(ValueError, match="got 'cells.h5ad'.*load_anndata"):
        load_dataset("cells.h5ad")
