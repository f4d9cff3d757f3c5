"""The pooled corpus packed into one .h5ad (`pack_pooled`) gives the tokens the archives give."""

import json

import anndata as ad
import fake_packages
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from sigjax.data import default_data_config, make_datasets, pack_pooled, pooled_anndata
from sigjax.data._pooled import _count_dtype


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archives")
    fake_packages.all_packages(folder, tmp_path_factory.mktemp("h5"))
    return folder


@pytest.fixture(scope="module")
def packed(archives, tmp_path_factory):
    """The default corpus packed with min_cells=1 (every gene), and what pack_pooled returned."""
    out = tmp_path_factory.mktemp("packed") / "pooled.h5ad"
    return out, pack_pooled(out, source=archives)


def pooled_config(path, **fields):
    """A data config like configs/pretrain_pooled.py's, at toy size (max_len 4 truncates cells)."""
    c = default_data_config()
    c.dataset, c.path, c.max_len, c.val_fraction = "pooled", str(path), 4, 0.2
    c.gene_selection, c.bin_ties = "top_expressed", "random"
    for k, v in fields.items():
        setattr(c, k, v)
    return c


def assert_same_cells(a, b):
    for field in ("genes", "values", "offsets", "labels", "targets"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.label_names == b.label_names


@pytest.mark.parametrize(
    "fields",
    [
        {},  # configs/pretrain_pooled.py's gene selection and ties.
        {"min_cells": 12},  # Applied to the file packed with min_cells=1, as to the archives.
        {"gene_selection": "all_expressed"},  # Random truncation, seeded by row.
        {"gene_selection": "highly_variable", "n_top_genes": 6},
        {"value_encoding": "continuous", "bin_ties": "average"},
    ],
    ids=["top_expressed", "min_cells", "all_expressed", "highly_variable", "continuous"],
)
def test_packed_file_gives_the_archives_tokens(archives, packed, fields):
    out, _ = packed
    train, val, vocab = make_datasets(pooled_config(archives, **fields))
    p_train, p_val, p_vocab = make_datasets(pooled_config(out, **fields))
    assert p_vocab == vocab
    assert_same_cells(p_train, train)
    assert_same_cells(p_val, val)
    if "min_cells" in fields:
        assert vocab.n_genes < ad.read_h5ad(out).n_vars  # The filter dropped genes of the file,
        assert len(train) + len(val) == 31  # and left 3 cells without a gene (not trained on).
    else:
        assert len(train) + len(val) == 5 + 6 + 4 + 12 + 3 + 4  # The default corpus.
        assert train.lengths.max() == 4  # Cells were truncated: which genes are kept matters.


def test_packed_file_holds_the_corpus_small(archives, packed):
    out, summary = packed
    full = pooled_anndata(source=archives)
    a = ad.read_h5ad(out)
    assert isinstance(a.X, sp.csc_matrix) and a.X.dtype == np.uint8  # Poisson counts < 256.
    assert list(a.var_names) == list(full.var_names)
    assert list(a.obs_names) == list(full.obs_names)
    assert list(a.obs["dataset"]) == list(full.obs["dataset"])
    assert list(a.obs["dataset"].cat.categories) == list(full.obs["dataset"].cat.categories)
    assert (a.X.astype(np.float32) != full.X).nnz == 0
    assert a.uns["pooled"]["min_cells"] == 1 and list(a.uns["pooled"]["datasets"]) == list(
        full.obs["dataset"].cat.categories
    )
    with h5py.File(out) as f:
        assert f["X/data"].compression == "gzip" and f["X/data"].shuffle
        assert f["X/indices"].compression == "gzip"
        assert f["X/indices"].chunks == (full.X.nnz,)  # One chunk up to 2^20 values.
    assert summary["n_cells"] == full.n_obs and summary["n_genes"] == full.n_vars
    assert summary["nnz"] == full.X.nnz and summary["dtype"] == "uint8"
    assert summary["bytes"] == out.stat().st_size


def test_count_dtype_is_the_smallest_that_holds_the_counts():
    def dtype(values):
        return _count_dtype(sp.csr_matrix(np.array([values], np.float32)))

    assert dtype([1, 255]) == np.uint8
    assert dtype([1, 256]) == np.uint16
    assert dtype([3, 2_334_627]) == np.uint32  # Chung's Smart-seq2 maximum.
    assert dtype([1, 2.5]) == np.float32  # Not counts: kept as read.


def test_file_refuses_what_it_cannot_honour(archives, tmp_path):
    out = tmp_path / "strict.h5ad"
    pack_pooled(out, "pbmc8k,pbmc3k", source=archives, min_cells=3)
    with pytest.raises(ValueError, match=r"data.min_cells: got 1, but .* min_cells=3"):
        make_datasets(pooled_config(out, datasets="pbmc8k,pbmc3k", min_cells=1))
    with pytest.raises(ValueError, match=r"data.datasets: got \['pbmc8k', 'dentate_gyrus'"):
        make_datasets(pooled_config(out, min_cells=3))  # "" = the default sets.
    with pytest.raises(ValueError, match=r"data.datasets: got \['pbmc3k', 'pbmc8k'\]"):
        make_datasets(pooled_config(out, datasets="pbmc3k,pbmc8k", min_cells=3))  # Cell order.
    full = make_datasets(pooled_config(archives, datasets="pbmc8k,pbmc3k", min_cells=5))
    again = make_datasets(pooled_config(out, datasets="pbmc8k,pbmc3k", min_cells=5))
    assert again[2] == full[2]
    assert_same_cells(again[0], full[0])


def test_pack_pooled_argument_errors(tmp_path):
    empty = tmp_path / "no_archives"
    empty.mkdir()  # Each error comes before any archive is read.
    with pytest.raises(ValueError, match=r"out_path: got .*missing.*whose folder .* not exist"):
        pack_pooled(tmp_path / "missing" / "p.h5ad", source=empty)
    with pytest.raises(ValueError, match=r"out_path: got .*p\.h5'.*ending in \.h5ad"):
        pack_pooled(tmp_path / "p.h5", source=empty)
    for level in (0, 10, "9", 2.0):
        with pytest.raises(ValueError, match=rf"level: got {level!r}, expected an integer"):
            pack_pooled(tmp_path / "p.h5ad", source=empty, level=level)
    for min_cells in (0, 1.5, True):
        with pytest.raises(ValueError, match=rf"min_cells: got {min_cells!r}, expected"):
            pack_pooled(tmp_path / "p.h5ad", source=empty, min_cells=min_cells)
    with pytest.raises(ValueError, match="data.datasets: got 'zeisel', whose genes have no"):
        pack_pooled(tmp_path / "p.h5ad", "pbmc8k,zeisel", source=empty)
    assert not list(tmp_path.glob("p.h5ad*"))


def test_command_line(archives, tmp_path, capsys):
    from eval.__main__ import main

    out = tmp_path / "cli.h5ad"
    main(["pack-pooled", f"--out={out}", f"--source={archives}", "--datasets=pbmc3k,liao_bal"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(out) and printed["datasets"] == ["pbmc3k", "liao_bal"]
    assert printed["n_cells"] == 4 + 12 and printed["seconds"] >= 0
    assert ad.read_h5ad(out).n_obs == 16
