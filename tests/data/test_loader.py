"""CellLoader: batch contract, determinism, resume equality, bucketing, evaluation pass."""

import json

import numpy as np
import pytest

from sigjax.data import CLS_ID, CellLoader, TokenizedCells, bucket_length


def _cells(n=300, seed=0, longest=700):
    """Random tokenised cells with lengths 2..longest (CLS + genes), genes unique per cell."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(2, longest + 1, size=n)
    offsets = np.zeros(n + 1, np.int64)
    offsets[1:] = np.cumsum(lens)
    genes = np.concatenate([[CLS_ID, *(3 + rng.permutation(2000)[: k - 1])] for k in lens])
    values = np.concatenate([[0.0, *rng.integers(1, 51, k - 1)] for k in lens])
    labels = rng.integers(-1, 4, size=n).astype(np.int32)
    return TokenizedCells(
        genes.astype(np.int32), values.astype(np.float32), offsets, labels, ["a", "b", "c", "d"]
    )


def _take(loader, k):
    return [next(loader) for _ in range(k)]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_bucket_lengths():
    assert [bucket_length(n, 8192) for n in (1, 64, 65, 500, 513, 769, 1025, 5000)] == [
        64,
        64,
        128,
        512,
        768,
        1024,
        1536,
        6144,
    ]
    assert bucket_length(900, 1000) == 1024  # Cap = max_len rounded up to 64.
    assert bucket_length(300, 200) == 256
    sizes = {bucket_length(n, 16384) for n in range(1, 16385)}
    assert all(s % 64 == 0 for s in sizes) and len(sizes) < 25


def test_batch_contract():
    cells = _cells()
    loader = CellLoader(cells, batch_size=16, seed=0, max_len=700)
    seen = []
    for batch in _take(loader, loader.batches_per_epoch):
        b, length = batch["genes"].shape
        assert b == 16 and length % 64 == 0 and length == bucket_length(batch["lengths"].max(), 700)
        assert batch["genes"].dtype == np.int32 and batch["values"].dtype == np.float32
        assert batch["lengths"].dtype == np.int32 and batch["labels"].dtype == np.int32
        assert (batch["genes"][:, 0] == CLS_ID).all() and (batch["values"][:, 0] == 0).all()
        pos = np.arange(length)[None, :]
        pad = pos >= batch["lengths"][:, None]
        assert (batch["genes"][pad] == 0).all() and (batch["values"][pad] == 0).all()
        assert (batch["genes"][~pad] > 0).all()
        # Rows are real cells: find each by its labels and tokens.
        for row in range(b):
            n = batch["lengths"][row]
            hits = [
                c
                for c in range(len(cells))
                if cells.lengths[c] == n
                and np.array_equal(cells.cell(c)[0], batch["genes"][row, :n])
            ]
            assert len(hits) == 1
            c = hits[0]
            np.testing.assert_array_equal(cells.cell(c)[1], batch["values"][row, :n])
            assert batch["labels"][row] == cells.labels[c]
            seen.append(c)
    assert len(seen) == len(set(seen)) == 300 - 300 % 16  # An epoch: each cell at most once.


def test_deterministic_and_seeded():
    cells = _cells()
    a = _take(CellLoader(cells, batch_size=16, seed=3, max_len=700), 45)  # > 2 epochs (18 each).
    b = _take(CellLoader(cells, batch_size=16, seed=3, max_len=700), 45)
    _same(a, b)
    c = _take(CellLoader(cells, batch_size=16, seed=4, max_len=700), 3)
    assert any(
        not np.array_equal(x["lengths"], y["lengths"]) for x, y in zip(a[:3], c, strict=True)
    )
    # Epochs differ in order.
    assert not np.array_equal(a[0]["lengths"], a[18]["lengths"])


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("stop", [5, 18, 19, 30])
def test_resume_equals_uninterrupted(bucket, stop):
    cells = _cells()
    make = lambda: CellLoader(cells, batch_size=16, seed=1, max_len=700, bucket_by_length=bucket)
    whole = _take(make(), stop + 12)
    first = make()
    _take(first, stop)
    state = json.loads(json.dumps(first.get_state()))  # Survives a JSON round trip.
    assert all(isinstance(v, int) for v in state.values())
    resumed = make()
    resumed.set_state(state)
    _same(_take(resumed, 12), whole[stop:])


def test_set_state_checks():
    cells = _cells()
    loader = CellLoader(cells, batch_size=16, seed=1, max_len=700)
    state = loader.get_state()
    other = CellLoader(cells, batch_size=8, seed=1, max_len=700)
    with pytest.raises(ValueError, match="got batch_size=16, expected 8"):
        other.set_state(state)
    with pytest.raises(ValueError, match="missing \\['index'\\]"):
        loader.set_state({"epoch": 0})


def test_bucketing_reduces_padding():
    cells = _cells(n=600)

    def padding(bucket):
        loader = CellLoader(cells, batch_size=16, seed=0, max_len=700, bucket_by_length=bucket)
        batches = _take(loader, loader.batches_per_epoch)
        return sum(b["genes"].size - b["lengths"].sum() for b in batches)

    assert padding(True) < 0.5 * padding(False)


def test_iter_epoch_in_order_without_drop():
    cells = _cells(n=50)
    loader = CellLoader(cells, batch_size=16, seed=0, drop_remainder=False, shuffle=False)
    before = loader.get_state()
    batches = list(loader.iter_epoch())
    assert [len(b["lengths"]) for b in batches] == [16, 16, 16, 2]
    np.testing.assert_array_equal(np.concatenate([b["lengths"] for b in batches]), cells.lengths)
    np.testing.assert_array_equal(np.concatenate([b["labels"] for b in batches]), cells.labels)
    assert loader.get_state() == before


def test_empty_cells_for_evaluation():
    empty = _cells(n=10).subset(np.zeros(0, np.int64))
    loader = CellLoader(empty, batch_size=4, seed=0, max_len=128, drop_remainder=False)
    assert list(loader.iter_epoch()) == []
    with pytest.raises(ValueError, match="got 0 cells"):
        next(loader)


def test_errors():
    cells = _cells(n=10)
    with pytest.raises(ValueError, match="data.batch_size: got 16 with only 10 cells"):
        CellLoader(cells, batch_size=16, seed=0)
    with pytest.raises(ValueError, match="data.batch_size: got 0"):
        CellLoader(cells, batch_size=0, seed=0)
    with pytest.raises(ValueError, match="max_len: got 64, but a cell has"):
        CellLoader(cells, batch_size=4, seed=0, max_len=64)
