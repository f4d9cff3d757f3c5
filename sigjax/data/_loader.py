"""Deterministic, resumable batching of tokenised cells, bucketed by length to limit padding."""

import numpy as np

from sigjax.data._tokenize import TokenizedCells


def bucket_length(n: int, cap: int) -> int:
    """Padded length for a batch whose longest cell has n tokens.

    Multiples of 64 up to 512, then powers of 2 and 1.5x powers of 2: a small fixed set, so jit
    compiles a handful of shapes; capped at `cap` rounded up to 64.
    """
    cap = -(-cap // 64) * 64
    if n <= 512:
        return min(-(-n // 64) * 64, cap) if n > 0 else 64
    size = 512
    while size < n:
        size = size * 3 // 2 if (size & (size - 1)) == 0 else size * 4 // 3
    return min(size, cap)


def pad_batch(cells: TokenizedCells, idx, max_len: int) -> dict:
    """Dense batch of cells `idx`: genes/values [B, L], lengths, labels (see the batch contract)."""
    lens = cells.lengths[idx]
    length = bucket_length(int(lens.max()) if len(lens) else 1, max_len)
    genes = np.zeros((len(idx), length), np.int32)
    values = np.zeros((len(idx), length), np.float32)
    for row, c in enumerate(idx):
        a, b = cells.offsets[c], cells.offsets[c + 1]
        genes[row, : b - a] = cells.genes[a:b]
        values[row, : b - a] = cells.values[a:b]
    return {"genes": genes, "values": values, "lengths": lens.astype(np.int32),
            "labels": cells.labels[idx].astype(np.int32)}


class CellLoader:
    """Endless iterator of batches, epoch after epoch, deterministic from (seed, epoch).

    With `bucket_by_length`, each epoch's shuffled cells are sorted by length inside windows of
    50 batches, cut into batches, and the batch order is shuffled again: similar lengths share a
    batch (little padding) while the order stays random. `get_state()`/`set_state()` make a
    restored loader yield exactly the batches the uninterrupted one would have.
    """

    def __init__(self, cells: TokenizedCells, *, batch_size: int, seed: int, max_len: int,
                 shuffle: bool = True, bucket_by_length: bool = True, drop_remainder: bool = True):
        if batch_size < 1:
            raise ValueError(f"data.batch_size: got {batch_size}, expected >= 1")
        if len(cells) < batch_size and drop_remainder:
            raise ValueError(
                f"data.batch_size: got {batch_size} with only {len(cells)} cells; expected at most "
                "the number of cells"
            )
        self.cells, self.batch_size, self.seed, self.max_len = cells, batch_size, seed, max_len
        self.shuffle, self.bucket, self.drop = shuffle, bucket_by_length, drop_remainder
        self.epoch, self.index = 0, 0
        self._plan = None

    def _epoch_plan(self, epoch: int) -> list:
        n = len(self.cells)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket:
            window = self.batch_size * 50
            lens = self.cells.lengths
            order = np.concatenate(
                [w[np.argsort(-lens[w], kind="stable")] for w in np.split(order, range(window, n, window))]
            )
        stop = n - n % self.batch_size if self.drop else n
        batches = [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]
        if self.bucket and self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._plan is None or self._plan[0] != self.epoch:
            self._plan = (self.epoch, self._epoch_plan(self.epoch))
        batches = self._plan[1]
        if self.index >= len(batches):
            self.epoch, self.index = self.epoch + 1, 0
            return next(self)
        idx = batches[self.index]
        self.index += 1
        return pad_batch(self.cells, idx, self.max_len)

    def get_state(self) -> dict:
        return {"epoch": int(self.epoch), "index": int(self.index)}

    def set_state(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])

    def iter_epoch(self):
        """One pass over all cells in their stored order, last batch partial (for evaluation)."""
        n = len(self.cells)
        for i in range(0, n, self.batch_size):
            yield pad_batch(self.cells, np.arange(i, min(i + self.batch_size, n)), self.max_len)
