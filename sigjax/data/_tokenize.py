"""Cells as token sequences: a gene vocabulary and tokenisation of expression profiles."""

import dataclasses
import json
import logging
import pathlib

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

PAD, CLS, MASK = "<pad>", "<cls>", "<mask>"
SPECIALS = (PAD, CLS, MASK)
PAD_ID, CLS_ID, MASK_ID = 0, 1, 2


class Vocab:
    """Gene ids to token ids. Ids 0, 1, 2 are <pad>, <cls>, <mask>; genes follow in order."""

    def __init__(self, tokens):
        tokens = list(tokens)
        if tuple(tokens[:3]) != SPECIALS:
            raise ValueError(f"vocab: got first tokens {tokens[:3]}, expected {list(SPECIALS)}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocab: got duplicate tokens; expected unique gene ids")
        self.tokens = tokens
        self._index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def from_genes(cls, names) -> "Vocab":
        """A vocabulary of the given gene ids (duplicates kept once, in first-seen order)."""
        return cls([*SPECIALS, *dict.fromkeys(str(n) for n in names if str(n) not in SPECIALS)])

    @property
    def size(self) -> int:
        return len(self.tokens)

    def encode(self, names) -> np.ndarray:
        """Token ids of gene ids; -1 for genes not in the vocabulary."""
        return np.array([self._index.get(str(n), -1) for n in names], dtype=np.int32)

    def save(self, path) -> None:
        pathlib.Path(path).write_text(json.dumps({"tokens": self.tokens}))

    @classmethod
    def load(cls, path) -> "Vocab":
        return cls(json.loads(pathlib.Path(path).read_text())["tokens"])

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def __len__(self) -> int:
        return self.size


@dataclasses.dataclass
class TokenizedCells:
    """Ragged token sequences: cell c is genes[offsets[c]:offsets[c+1]] (CLS first), same for values.

    Attributes:
      genes: int32 token ids, all cells concatenated.
      values: float32 expression values (0 at CLS): bins 1..n_bins-1 ("binned") or log1p values.
      offsets: int64 [C + 1].
      labels: int32 [C], -1 when unknown.
      label_names: names of label ids.
    """

    genes: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    label_names: list

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets).astype(np.int32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def subset(self, idx) -> "TokenizedCells":
        idx = np.asarray(idx)
        lens = self.lengths[idx]
        offsets = np.zeros(len(idx) + 1, np.int64)
        offsets[1:] = np.cumsum(lens)
        take = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx]) \
            if len(idx) else np.zeros(0, np.int64)
        return TokenizedCells(
            self.genes[take], self.values[take], offsets, self.labels[idx], self.label_names
        )


def _bin_values(v: np.ndarray, n_bins: int) -> np.ndarray:
    """Per-cell quantile bins 1..n_bins-1 of the non-zero values (0 is reserved for CLS/pad)."""
    if v.size == 0:
        return v
    edges = np.quantile(v, np.linspace(0, 1, n_bins))
    return np.clip(np.digitize(v, edges[1:-1], right=True) + 1, 1, n_bins - 1).astype(np.float32)


def tokenize(
    adata,
    vocab: Vocab,
    *,
    max_len: int,
    value_encoding: str = "binned",
    n_bins: int = 51,
    target_sum: float = 1e4,
    chunk_size: int = 2048,
) -> TokenizedCells:
    """Tokenises each cell as <cls> followed by its expressed genes, highest expression first.

    Values: counts normalised to `target_sum` per cell, log1p, then "binned" (default: per-cell
    quantile bins, as scGPT, which makes values comparable across sequencing depths and data sets)
    or "continuous" (the log1p value). Cells longer than `max_len` tokens keep their
    `max_len - 1` most expressed genes. Genes absent from `vocab` are dropped.

    Args:
      adata: AnnData with counts in X (in memory or backed; backed files are read in chunks).
      vocab: gene vocabulary.
      max_len: maximum tokens per cell, CLS included.
      value_encoding: "binned" or "continuous".
      n_bins: number of value bins (bin 0 reserved).
      target_sum: library size after normalisation.
      chunk_size: cells read at a time.

    Returns:
      TokenizedCells.

    Raises:
      ValueError: bad arguments, negative/non-finite counts, or no gene in the vocabulary.
    """
    from sigjax.data._anndata import LABEL_KEY, _check_counts

    if value_encoding not in ("binned", "continuous"):
        raise ValueError(f"data.value_encoding: got {value_encoding!r}, expected 'binned' or 'continuous'")
    if max_len < 2:
        raise ValueError(f"data.max_len: got {max_len}, expected >= 2 (CLS plus one gene)")
    gene_ids = vocab.encode(adata.var_names)
    known = gene_ids >= 0
    n_known = int(known.sum())
    if n_known == 0:
        raise ValueError(
            f"genes: none of the {adata.n_vars} genes (e.g. {list(adata.var_names[:3])}) is in the "
            f"model's vocabulary of {vocab.size - 3} genes; expected matching gene ids"
        )
    if n_known < adata.n_vars:
        log.info("matched %d of %d genes to the vocabulary; dropping the rest", n_known, adata.n_vars)
    genes_out, values_out, lens = [], [], []
    for start in range(0, adata.n_obs, chunk_size):
        x = adata.X[start : start + chunk_size]
        x = sp.csr_matrix(x) if not sp.issparse(x) else x.tocsr()
        _check_counts(x, "counts")
        x = x.astype(np.float64)
        totals = np.asarray(x.sum(axis=1)).ravel()
        x = x[:, np.flatnonzero(known)]
        for r in range(x.shape[0]):
            row = x.indptr[r], x.indptr[r + 1]
            cols, counts = x.indices[row[0] : row[1]], x.data[row[0] : row[1]]
            keep = counts > 0
            cols, counts = cols[keep], counts[keep]
            order = np.argsort(-counts, kind="stable")[: max_len - 1]
            cols, counts = cols[order], counts[order]
            logv = np.log1p(counts / max(totals[r], 1e-12) * target_sum).astype(np.float32)
            vals = _bin_values(logv, n_bins) if value_encoding == "binned" else logv
            genes_out.append(np.concatenate([[1], gene_ids[known][cols]]).astype(np.int32))
            values_out.append(np.concatenate([[0.0], vals]).astype(np.float32))
            lens.append(len(cols) + 1)
    offsets = np.zeros(len(lens) + 1, np.int64)
    offsets[1:] = np.cumsum(lens)
    if LABEL_KEY in adata.obs.columns:
        cat = adata.obs[LABEL_KEY].astype(str).astype("category")
        labels, label_names = cat.cat.codes.to_numpy().astype(np.int32), list(cat.cat.categories)
    else:
        labels, label_names = np.full(len(lens), -1, np.int32), []
    return TokenizedCells(
        np.concatenate(genes_out) if genes_out else np.zeros(0, np.int32),
        np.concatenate(values_out) if values_out else np.zeros(0, np.float32),
        offsets, labels, label_names,
    )
