"""Deterministic, resumable batching of tokenised cells, bucketed by length to limit padding."""

import numpy as np

from sigjax.data._tokenize import TokenizedCells


def round_up_64(n: int) -> int:
    """`n` rounded up to a multiple of 64 (at least 64)."""
    return max(64, -(-int(n) // 64) * 64)


def bucket_length(n: int, cap: int) -> int:
    """Padded length for a batch whose longest cell has `n` tokens.

    Multiples of 64 up to 512, then 768, 1024, 1536, 2048, 3072, 4096, ... (powers of 2 and 1.5x
    powers of 2, all multiples of 64): a small fixed set, so jit compiles a handful of shapes while
    padding stays under a third. Capped at `cap` rounded up to 64.

    Args:
      n: tokens of the longest cell in the batch.
      cap: the configured max_len.

    Returns:
      The bucket length L >= n (when n <= cap).
    """
    cap = round_up_64(cap)
    if n <= 512:
        return min(round_up_64(n), cap)
    size = 512
    while size < n:
        size = size * 3 // 2 if (size & (size - 1)) == 0 else size * 4 // 3
    return min(size, cap)


def pad_batch(cells: TokenizedCells, idx, max_len: int) -> dict:
    """Dense batch of cells `idx`, padded to `bucket_length(longest, max_len)`.

    Args:
      cells: tokenised cells.
      idx: cell indices.
      max_len: the configured max_len (caps the bucket length).

    Returns:
      {"genes": int32 [B, L] (0 = pad, <cls> = 1 first), "values": float32 [B, L] (0 at <cls> and
      pad), "lengths": int32 [B] (tokens incl. <cls>), "labels": int32 [B] (-1 unknown)}, plus
      "targets": float32 [B, L] (log-normalised values, 0 at <cls> and pad) when the cells carry
      them.
    """
    idx = np.asarray(idx, np.int64)
    lens = cells.lengths[idx]
    length = bucket_length(int(lens.max()) if len(lens) else 1, max_len)
    # Scatter all tokens at once: row of each token, and its position inside the cell.
    rows = np.repeat(np.arange(len(idx)), lens)
    starts = np.zeros(len(idx) + 1, np.int64)
    starts[1:] = np.cumsum(lens)
    cols = np.arange(starts[-1]) - np.repeat(starts[:-1], lens)
    src = np.repeat(cells.offsets[idx], lens) + cols
    genes = np.zeros((len(idx), length), np.int32)
    values = np.zeros((len(idx), length), np.float32)
    genes[rows, cols] = cells.genes[src]
    values[rows, cols] = cells.values[src]
    batch = {
        "genes": genes,
        "values": values,
        "lengths": lens.astype(np.int32),
        "labels": cells.labels[idx].astype(np.int32),
    }
    if cells.targets is not None:  # Log-normalised values, for the expression objective.
        targets = np.zeros((len(idx), length), np.float32)
        targets[rows, cols] = cells.targets[src]
        batch["targets"] = targets
    return batch


class CellLoader:
    """Endless iterator of batches, epoch after epoch, deterministic from (seed, epoch).

    Each epoch permutes the cells with a generator seeded by (seed, epoch). With
    `bucket_by_length`, the permuted cells are sorted by length inside windows of `window`
    batches, cut into batches, and the batch order is permuted again: cells of similar length
    share a batch (little padding) while the order stays random. Batches are padded to a bucket
    length (`bucket_length`): multiples of 64 from a small fixed set, at most max_len rounded up.

    The position is (epoch, index of the next batch in the epoch); `get_state()` returns it and
    `set_state()` restores it, so a restored loader yields exactly the batches the uninterrupted one
    would have yielded.

    Args:
      cells: tokenised cells.
      batch_size: cells per batch.
      seed: seed of the order.
      max_len: caps the bucket length (rounded up to 64); default: the longest cell.
      shuffle: permute the cells each epoch (else stored order, or length-sorted windows).
      bucket_by_length: group cells of similar length.
      drop_remainder: drop the last partial batch of each epoch (fixed batch shapes).
      window: batches per sorting window when bucketing.

    Raises:
      ValueError: batch_size < 1, more cells per batch than cells (with drop_remainder), or cells
        longer than max_len. Zero cells are allowed with drop_remainder=False (an empty
        `iter_epoch()`, e.g. no validation cells); drawing a batch from them is a ValueError.
    """

    def __init__(
        self,
        cells: TokenizedCells,
        *,
        batch_size: int,
        seed: int,
        max_len: int | None = None,
        shuffle: bool = True,
        bucket_by_length: bool = True,
        drop_remainder: bool = True,
        window: int = 50,
    ):
        if batch_size < 1:
            raise ValueError(f"data.batch_size: got {batch_size}, expected >= 1")
        if len(cells) < batch_size and drop_remainder:
            raise ValueError(
                f"data.batch_size: got {batch_size} with only {len(cells)} cells to batch (in "
                "training: those data.val_fraction does not hold out) and drop_remainder=True; "
                "expected at most the number of cells"
            )
        if window < 1:
            raise ValueError(f"window: got {window}, expected >= 1")
        longest = int(cells.lengths.max()) if len(cells) else 1
        max_len = longest if max_len is None else int(max_len)
        if longest > round_up_64(max_len):
            raise ValueError(
                f"max_len: got {max_len}, but a cell has {longest} tokens; expected max_len at "
                "least the longest cell (tokenise with the same max_len)"
            )
        self.cells, self.batch_size, self.seed, self.max_len = (
            cells,
            int(batch_size),
            int(seed),
            max_len,
        )
        self.shuffle, self.bucket, self.drop, self.window = (
            shuffle,
            bucket_by_length,
            drop_remainder,
            window,
        )
        self.epoch, self.index = 0, 0
        self._plan = None

    def epoch_batches(self, epoch: int) -> list:
        """The cell indices of each batch of `epoch`, in order (a pure function of seed, epoch)."""
        n = len(self.cells)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket:
            window = self.batch_size * self.window
            lens = self.cells.lengths
            order = np.concatenate(
                [
                    w[np.argsort(-lens[w], kind="stable")]
                    for w in np.split(order, range(window, n, window))
                ]
            )
        stop = n - n % self.batch_size if self.drop else n
        batches = [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]
        if self.bucket and self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    @property
    def batches_per_epoch(self) -> int:
        """Batches in one epoch."""
        n = len(self.cells)
        return n // self.batch_size if self.drop else -(-n // self.batch_size)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self.batches_per_epoch == 0:
            raise ValueError("cells: got 0 cells; expected at least one to draw batches from")
        if self.index >= self.batches_per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
        if self._plan is None or self._plan[0] != self.epoch:
            self._plan = (self.epoch, self.epoch_batches(self.epoch))
        idx = self._plan[1][self.index]
        self.index += 1
        return pad_batch(self.cells, idx, self.max_len)

    def get_state(self) -> dict:
        """The position, as JSON-serialisable ints (plus seed, n_cells, batch_size to check)."""
        return {
            "epoch": int(self.epoch),
            "index": int(self.index),
            "seed": self.seed,
            "n_cells": len(self.cells),
            "batch_size": self.batch_size,
        }

    def set_state(self, state: dict) -> None:
        """Restores a position from `get_state()`.

        Args:
          state: a dict from `get_state()` ("epoch" and "index" required; "seed", "n_cells",
            "batch_size", when present, must match this loader).

        Raises:
          ValueError: missing keys, or a state from a loader over other cells, seed or batch size.
        """
        missing = [k for k in ("epoch", "index") if k not in state]
        if missing:
            raise ValueError(f"loader state: got keys {sorted(state)}, missing {missing}")
        mine = self.get_state()
        for key in ("seed", "n_cells", "batch_size"):
            if key in state and int(state[key]) != mine[key]:
                raise ValueError(
                    f"loader state: got {key}={state[key]}, expected {mine[key]} (the state comes "
                    "from a loader over other data or settings)"
                )
        epoch, index = int(state["epoch"]), int(state["index"])
        if epoch < 0 or not 0 <= index <= self.batches_per_epoch:
            raise ValueError(
                f"loader state: got epoch={epoch}, index={index}; expected epoch >= 0 and "
                f"0 <= index <= {self.batches_per_epoch}"
            )
        self.epoch, self.index = epoch, index

    def iter_epoch(self):
        """One pass over all cells in their stored order, last batch partial (for evaluation).

        Yields:
          batches as in `pad_batch`; does not move the training position.
        """
        n = len(self.cells)
        for i in range(0, n, self.batch_size):
            yield pad_batch(self.cells, np.arange(i, min(i + self.batch_size, n)), self.max_len)
