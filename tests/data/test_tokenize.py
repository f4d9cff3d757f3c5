"""Vocab and tokenisation, on the real PBMC 68k data set."""

import json

import numpy as np
import pytest

from sigjax.data import CLS_ID, MASK_ID, PAD_ID, Vocab, bin_values, tokenize


@pytest.fixture(scope="module")
def pbmc():
    from sigjax.data import load_dataset

    return load_dataset("pbmc68k_reduced")


def test_pbmc_counts(pbmc):
    assert pbmc.shape == (700, 765)
    assert pbmc.obs["cell_type"].nunique() == 10
    x = pbmc.X.data
    assert x.dtype == np.float32 and (x > 0).all() and np.array_equal(x, np.rint(x))
    # Depth: reconstructed counts sum close to the recorded n_counts of the scanpy object.
    import scanpy as sc

    n_counts = sc.datasets.pbmc68k_reduced().obs["n_counts"].to_numpy()
    ratio = np.asarray(pbmc.X.sum(axis=1)).ravel() / n_counts
    assert 0.2 < np.median(ratio) <= 1.0  # raw holds the 765 kept genes of all genes counted.


def _counts(pbmc):
    return pbmc.X.toarray()


def test_tokens_cls_lengths_and_order(pbmc):
    vocab = Vocab.from_genes(pbmc.var_names)
    cells = tokenize(pbmc, vocab, max_len=1024, n_bins=51)
    x = _counts(pbmc)
    nnz = (x > 0).sum(axis=1)
    assert len(cells) == 700 and nnz.max() < 1023  # No truncation at this max_len.
    np.testing.assert_array_equal(cells.lengths, nnz + 1)
    col_of = vocab.encode(pbmc.var_names)  # Token id of each column.
    token_to_col = {t: c for c, t in enumerate(col_of)}
    for c in range(0, 700, 7):
        genes, values = cells.cell(c)
        assert genes[0] == CLS_ID and values[0] == 0
        assert len(set(genes[1:].tolist())) == len(genes) - 1
        assert genes[1:].min() > MASK_ID
        counts = x[c, [token_to_col[t] for t in genes[1:]]]
        assert (counts > 0).all() and (np.diff(counts) <= 0).all()  # Highest expressed first.
        assert values[1:].min() >= 1 and values[1:].max() <= 50
        assert (np.diff(values[1:]) <= 0).all()  # Bins follow the counts.
        assert values[1:].max() >= 45  # The top gene's mid-rank quantile is near 1.
        same = np.diff(counts) == 0
        assert (np.diff(values[1:])[same] == 0).all()  # Equal counts, equal bins.
    names = pbmc.obs["cell_type"].astype(str).to_numpy()
    np.testing.assert_array_equal(np.asarray(cells.label_names)[cells.labels], names)


def test_truncation_keeps_highest(pbmc):
    vocab = Vocab.from_genes(pbmc.var_names)
    full = tokenize(pbmc, vocab, max_len=1024)
    cut = tokenize(pbmc, vocab, max_len=64)
    assert cut.lengths.max() == 64
    np.testing.assert_array_equal(cut.lengths, np.minimum(full.lengths, 64))
    x = _counts(pbmc)
    col = {t: c for c, t in enumerate(vocab.encode(pbmc.var_names))}
    for c in range(0, 700, 11):
        g_cut, v_cut = cut.cell(c)
        g_full, v_full = full.cell(c)
        np.testing.assert_array_equal(g_cut, g_full[: len(g_cut)])
        np.testing.assert_array_equal(v_cut, v_full[: len(v_cut)])  # Bins before truncation.
        kept = x[c, [col[t] for t in g_cut[1:]]]
        dropped = np.delete(x[c], [col[t] for t in g_cut[1:]])
        assert kept.min() >= dropped.max()


def test_continuous_values(pbmc):
    vocab = Vocab.from_genes(pbmc.var_names)
    cells = tokenize(pbmc, vocab, max_len=128, value_encoding="continuous", target_sum=1e4)
    x = _counts(pbmc).astype(np.float64)
    col = {t: c for c, t in enumerate(vocab.encode(pbmc.var_names))}
    for c in (0, 99, 699):
        genes, values = cells.cell(c)
        want = np.log1p(x[c, [col[t] for t in genes[1:]]] / x[c].sum() * 1e4)
        np.testing.assert_allclose(values[1:], want, rtol=1e-6)
        assert values[0] == 0


def test_vocab_roundtrip_and_errors(tmp_path):
    vocab = Vocab.from_genes(["CD3E", "MS4A1", "CD3E", "<cls>", "NKG7"])
    assert vocab.tokens[:3] == ["<pad>", "<cls>", "<mask>"]
    assert (PAD_ID, CLS_ID, MASK_ID) == (0, 1, 2)
    assert vocab.size == len(vocab) == 6
    np.testing.assert_array_equal(vocab.encode(["NKG7", "XIST", "CD3E"]), [5, -1, 3])
    assert vocab.encode(["NKG7"]).dtype == np.int32
    # A gene named like a special token is no gene of the vocabulary (never <cls>'s token).
    np.testing.assert_array_equal(vocab.encode(["<cls>", "<pad>", "NKG7"]), [-1, -1, 5])
    vocab.save(tmp_path / "v.json")
    json.loads((tmp_path / "v.json").read_text())  # Plain JSON.
    loaded = Vocab.load(tmp_path / "v.json")
    assert loaded == vocab and loaded != Vocab.from_genes(["CD3E"])
    with pytest.raises(ValueError, match="expected \\['<pad>', '<cls>', '<mask>'\\]"):
        Vocab(["A", "B", "C"])
    with pytest.raises(ValueError, match="duplicates \\['A'\\]"):
        Vocab(["<pad>", "<cls>", "<mask>", "A", "A"])
    with pytest.raises(FileNotFoundError, match="not an existing file"):
        Vocab.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="cannot read"):
        Vocab.load(tmp_path / "bad.json")


def test_tokenize_with_other_vocab(pbmc):
    names = list(pbmc.var_names)
    rng = np.random.default_rng(0)
    subset = [names[i] for i in rng.permutation(len(names))[:300]]
    vocab = Vocab.from_genes(["NOT_A_GENE", *subset])  # Other order, an extra gene.
    cells = tokenize(pbmc, vocab, max_len=1024)
    x = _counts(pbmc)
    in_vocab = np.isin(np.asarray(names), subset)
    np.testing.assert_array_equal(cells.lengths, (x[:, in_vocab] > 0).sum(axis=1) + 1)
    genes, _ = cells.cell(3)
    tokens = [vocab.tokens[t] for t in genes[1:]]
    assert set(tokens) <= set(subset)
    assert all(x[3, names.index(t)] > 0 for t in tokens)
    with pytest.raises(ValueError, match="none of the 765 genes"):
        tokenize(pbmc, Vocab.from_genes(["A", "B"]), max_len=64)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.uint16])
def test_dense_x_of_any_dtype_gives_the_tokens_of_csr(pbmc, dtype):
    # `eval embed` tokenises X as the file holds it: dense float16 (which scipy.sparse refuses)
    # and integer matrices must give the tokens of the float32 CSR counts.
    vocab = Vocab.from_genes(pbmc.var_names)
    want = tokenize(pbmc[:50], vocab, max_len=64)
    dense = pbmc[:50].copy()
    dense.X = _counts(dense).astype(dtype)
    got = tokenize(dense, vocab, max_len=64)
    np.testing.assert_array_equal(got.genes, want.genes)
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got.offsets, want.offsets)


def test_bad_arguments(pbmc):
    vocab = Vocab.from_genes(pbmc.var_names)
    with pytest.raises(ValueError, match="data.value_encoding: got 'rank'"):
        tokenize(pbmc, vocab, max_len=64, value_encoding="rank")
    with pytest.raises(ValueError, match="data.max_len: got 1"):
        tokenize(pbmc, vocab, max_len=1)


def test_bin_values():
    v = np.array([1.0, 1.0, 5.0, 2.0, 9.0, 1.0])
    bins = bin_values(v, 11)
    assert bins.dtype == np.float32
    assert bins[0] == bins[1] == bins[5]  # Ties share a bin.
    assert bins[0] < bins[3] < bins[2] < bins[4]  # Order kept.
    assert bins.min() >= 1 and bins.max() <= 10
    many = bin_values(np.arange(1.0, 1001.0), 51)
    np.testing.assert_array_equal(
        np.bincount(many.astype(int))[1:], np.full(50, 20)
    )  # Equal-sized.
    np.testing.assert_array_equal(bin_values(v * 7.3, 11), bins)  # Scale-free.


def test_random_ties_spread_tied_counts_over_their_rank_range():
    counts = np.array([1.0] * 10 + [2.0] * 5 + [7.0])
    average = bin_values(counts, 17)
    assert len(np.unique(average[:10])) == 1  # All count-1 genes share one bin.
    rng = np.random.default_rng(0)
    spread = bin_values(counts, 17, rng)
    # Ranks 1..10 of 16 values: bins floor((r - 0.5) / 16 * 16) + 1 = r, one per tied gene.
    assert sorted(spread[:10]) == list(range(1, 11))
    assert sorted(spread[10:15]) == list(range(11, 16)) and spread[15] == 16
    assert not np.array_equal(spread, bin_values(counts, 17, np.random.default_rng(1)))
    assert spread.mean() == pytest.approx(average.mean(), abs=0.5)  # Same ranks on average.


def test_targets_random_ties_and_random_truncation(pbmc):
    vocab = Vocab.from_genes(pbmc.var_names)
    x = _counts(pbmc)
    cells = tokenize(pbmc, vocab, max_len=1024, value_encoding="binned", bin_ties="random", seed=3)
    again = tokenize(pbmc, vocab, max_len=1024, bin_ties="random", seed=3, chunk_size=97)
    assert np.array_equal(cells.values, again.values)  # Per-cell seeds: chunking plays no part.
    cont = tokenize(pbmc, vocab, max_len=1024, value_encoding="continuous")
    assert np.allclose(cells.targets, cont.values)  # Targets are the log1p values either way.
    genes = cells.cell(5)[0]
    own = cells.targets[cells.offsets[5] : cells.offsets[6]]
    # Gene ids are columns + 3 (vocabulary of the data's genes, specials first).
    assert own[0] == 0 and np.allclose(own[1:], np.log1p(x[5, genes[1:] - 3] / x[5].sum() * 1e4))
    short = tokenize(pbmc, vocab, max_len=20, truncate="random", seed=0)
    top = tokenize(pbmc, vocab, max_len=20)
    assert (short.lengths == top.lengths).all()
    assert not np.array_equal(short.genes, top.genes)  # A random subset, not the top counts.
    sub = cells.subset([5, 2])
    assert np.array_equal(
        sub.targets[: sub.offsets[1]], cells.targets[cells.offsets[5] : cells.offsets[6]]
    )
    with pytest.raises(ValueError, match="data.bin_ties"):
        tokenize(pbmc, vocab, max_len=20, bin_ties="first")


def test_select_genes_highly_variable(pbmc):
    from sigjax.data._tokenize import select_genes

    assert select_genes(pbmc, "top_expressed", 10) == list(pbmc.var_names)
    hvg = select_genes(pbmc, "highly_variable", 100)
    assert len(hvg) == 100 and set(hvg) <= set(pbmc.var_names)
    assert hvg == [g for g in pbmc.var_names if g in set(hvg)]  # Data order kept.
    with pytest.raises(ValueError, match="data.gene_selection"):
        select_genes(pbmc, "hvg", 100)
