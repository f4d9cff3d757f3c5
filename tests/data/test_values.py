"""How values are read (data.input_values): auto detection, one path for every kind, no overflow."""

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from sigjax.data import (
    Vocab,
    default_data_config,
    load_anndata,
    make_datasets,
    resolve_values,
    synthetic_anndata,
    tokenize,
    tokenize_with,
)


def kinds():
    """The same synthetic cells as counts, log-normalised (scanpy), TPM-like (sum 1e6) and
    log2(TPM + 1) (as full-length data sets are often shared)."""
    import scanpy as sc

    counts = synthetic_anndata(n_cells=80, n_genes=300, n_types=3, min_genes=40, max_genes=120)
    lognorm = counts.copy()
    sc.pp.normalize_total(lognorm, target_sum=1e4)
    sc.pp.log1p(lognorm)
    tpm = counts.copy()
    x = counts.X.astype(np.float64)
    tpm.X = sp.csr_matrix(sp.diags(1e6 / np.asarray(x.sum(axis=1)).ravel()) @ x).astype(np.float32)
    log2tpm = tpm.copy()
    log2tpm.X.data = np.log2(1.0 + log2tpm.X.data.astype(np.float64)).astype(np.float32)
    return counts, lognorm, tpm, log2tpm


@pytest.fixture(scope="module")
def data():
    return kinds()


@pytest.mark.parametrize(
    ("which", "kind", "reason"),
    [
        (0, "counts", "all values are whole numbers"),
        (1, "log1p", "look log-normalised; expm1 before normalising"),
        (2, "normalized", "look normalised but not logged (TPM, CPM)"),
        (3, "log2", "sums to one constant"),
    ],
)
def test_auto_detects_each_kind_and_says_why(data, which, kind, reason, caplog):
    with caplog.at_level(logging.INFO, logger="sigjax.data"):
        got = resolve_values(data[which].X, "auto", "cells.h5ad")
    assert got == kind
    lines = [r.getMessage() for r in caplog.records if "values read as" in r.getMessage()]
    assert len(lines) == 1, lines  # One line, with the decision and its reason.
    assert f"values read as {kind!r} (input_values='auto': " in lines[0]
    assert reason in lines[0] and lines[0].startswith("cells.h5ad:")


def test_tpm_values_reach_tens_of_thousands(data):
    # The defect's data: non-integer values far beyond any log scale (expm1 would overflow).
    assert 5_000 < data[2].X.max() < 1e6
    assert not np.all(data[2].X.data == np.rint(data[2].X.data))


@pytest.mark.parametrize("encoding", ["continuous", "binned"])
def test_every_kind_gives_the_tokens_of_its_counts(data, encoding):
    counts, lognorm, tpm, log2tpm = data
    vocab = Vocab.from_genes(counts.var_names)
    ref = tokenize(counts, vocab, max_len=64, value_encoding=encoding)
    for adata in (lognorm, tpm, log2tpm):
        got = tokenize(adata, vocab, max_len=64, value_encoding=encoding)
        np.testing.assert_array_equal(got.genes, ref.genes)
        np.testing.assert_allclose(got.values, ref.values, rtol=1e-5, atol=1e-5)
        assert np.all(np.isfinite(got.values))


def test_explicit_kinds(data, caplog):
    counts, lognorm, tpm, log2tpm = data
    vocab = Vocab.from_genes(counts.var_names)
    ref = tokenize(counts, vocab, max_len=64, value_encoding="continuous")

    def values(adata, kind):
        return tokenize(
            adata, vocab, max_len=64, value_encoding="continuous", input_values=kind
        ).values

    np.testing.assert_allclose(values(lognorm, "log1p"), ref.values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values(tpm, "normalized"), ref.values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values(log2tpm, "log2"), ref.values, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(values(counts, "counts"), ref.values)
    # The base matters: log2 values read as ln ones give other values.
    assert np.abs(values(log2tpm, "log1p") - ref.values).max() > 0.1
    # Asked to read log values as counts, it does so (logged twice: different values), warned.
    with caplog.at_level(logging.WARNING, logger="sigjax.data"):
        assert np.abs(values(lognorm, "counts") - ref.values).max() > 0.5
    assert "not whole numbers (max" in caplog.text and "read as 'counts', as asked" in caplog.text
    # TPM is no log1p data: refused with the reason, never expm1'd into inf.
    with pytest.raises(ValueError, match=r"got 'log1p', but adata.X holds values up to"):
        values(tpm, "log1p")
    with pytest.raises(ValueError, match=r"data.input_values: got 'logged', expected one of"):
        values(counts, "logged")


def test_log2_of_unnormalised_counts_reads_as_ln():
    # Cell sums after 2^x - 1 are only constant for normalised values; base 2 of raw counts
    # cannot be told from ln by the data alone (documented: say input_values="log2" then).
    counts = kinds()[0].X.astype(np.float64)
    counts.data = np.log2(1.0 + counts.data)
    assert resolve_values(counts, "auto") == "log1p"
    assert resolve_values(counts, "log2") == "log2"


def test_large_log_values_never_overflow():
    # Log values up to LOG1P_MAX (expm1 in float64) stay finite through normalisation.
    x = sp.csr_matrix(np.array([[20.0, 0.5, 19.5], [0.0, 1.5, 20.0]]))
    kind = resolve_values(x, "auto")
    assert kind == "log1p"
    import anndata as ad

    adata = ad.AnnData(X=x)
    cells = tokenize(
        adata, Vocab.from_genes(adata.var_names), max_len=8, value_encoding="continuous"
    )
    assert np.all(np.isfinite(cells.values))


def test_negative_values_are_refused():
    with pytest.raises(ValueError, match="found negative values"):
        resolve_values(np.array([[1.0, -0.5]]), "auto")
    with pytest.raises(ValueError, match="found non-finite values"):
        resolve_values(np.array([[1.0, np.nan]]), "counts")


def test_training_reads_a_log_normalised_file_as_its_counts(data, tmp_path):
    counts, lognorm, *_ = data
    for name, adata in (("counts", counts), ("lognorm", lognorm)):
        adata.write_h5ad(tmp_path / f"{name}.h5ad")
    cfg = default_data_config()
    cfg.value_encoding = "continuous"
    cfg.max_len = 64
    assert cfg.input_values == "auto"  # The default.
    cfg.path = str(tmp_path / "counts.h5ad")
    train_c, val_c, vocab = make_datasets(cfg)
    cfg.path = str(tmp_path / "lognorm.h5ad")
    train_l, val_l, _ = make_datasets(cfg, vocab=vocab)
    np.testing.assert_allclose(train_l.values, train_c.values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(val_l.values, val_c.values, rtol=1e-5, atol=1e-5)
    # A saved config older than the field reads values as its training did: as they are.
    legacy = default_data_config()
    legacy.value_encoding, legacy.max_len = "continuous", 64
    del legacy["input_values"]
    as_is = tokenize_with(legacy, lognorm, vocab)
    assert np.abs(as_is.values - tokenize_with(cfg, lognorm, vocab).values).max() > 0.5


def test_scaled_x_with_raw_suggests_use_raw(data, tmp_path):
    import scanpy as sc

    _, lognorm, *_ = data
    scaled = lognorm.copy()
    scaled.raw = lognorm
    sc.pp.scale(scaled)
    scaled.write_h5ad(tmp_path / "scaled.h5ad")
    with pytest.raises(ValueError, match=r"found negative counts .*try --use_raw"):
        load_anndata(tmp_path / "scaled.h5ad")
    back = load_anndata(tmp_path / "scaled.h5ad", use_raw=True)
    assert back.X.min() >= 0
