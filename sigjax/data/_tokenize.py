"""Cells as token sequences: a gene vocabulary and tokenisation of expression profiles."""

import dataclasses
import json
import logging
import pathlib

import numpy as np
import scipy.sparse as sp
import scipy.stats
from jaxtyping import Float, Int

from sigjax._io import atomic_write
from sigjax.data._values import resolve_values, to_count_scale

log = logging.getLogger(__name__)

PAD, CLS, MASK = "<pad>", "<cls>", "<mask>"
SPECIALS = (PAD, CLS, MASK)
PAD_ID, CLS_ID, MASK_ID = 0, 1, 2
VALUE_ENCODINGS = ("binned", "continuous")
BIN_TIES = ("average", "random")
GENE_SELECTIONS = ("top_expressed", "highly_variable", "all_expressed")
_CHUNK = 2048  # Cells read at a time (backed files are read chunk by chunk).


class Vocab:
    """Gene ids to token ids: 0, 1, 2 are <pad>, <cls>, <mask>; genes follow in order.

    Args:
      tokens: all tokens, the three specials first, each once.

    Raises:
      ValueError: specials missing or out of place, or duplicate tokens.
    """

    def __init__(self, tokens):
        tokens = [str(t) for t in tokens]
        if tuple(tokens[:3]) != SPECIALS:
            raise ValueError(
                f"vocab tokens: got first tokens {tokens[:3]}, expected {list(SPECIALS)}"
            )
        if len(set(tokens)) != len(tokens):
            seen, dups = set(), []
            for t in tokens:
                if t in seen:
                    dups.append(t)
                seen.add(t)
            raise ValueError(f"vocab tokens: got duplicates {dups[:5]}; expected unique gene ids")
        self.tokens = tokens
        self._index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def from_genes(cls, names) -> "Vocab":
        """A vocabulary of the given gene ids (each kept once, in first-seen order) plus specials.

        Args:
          names: gene ids (e.g. `adata.var_names`).

        Returns:
          Vocab.
        """
        return cls([*SPECIALS, *dict.fromkeys(str(n) for n in names if str(n) not in SPECIALS)])

    @property
    def size(self) -> int:
        """Number of tokens, specials included."""
        return len(self.tokens)

    @property
    def genes(self) -> list[str]:
        """The gene tokens, in order (the specials left out)."""
        return self.tokens[len(SPECIALS) :]

    @property
    def n_genes(self) -> int:
        """Number of gene tokens (`size` less the specials)."""
        return self.size - len(SPECIALS)

    def encode(self, names) -> Int[np.ndarray, " G"]:
        """Token ids of gene ids (matched as strings); -1 for genes not in the vocabulary, and
        for a gene named like a special token ("<pad>", ...), which is never a gene's token.

        Args:
          names: gene ids.

        Returns:
          int32 token ids.
        """
        ids = np.array([self._index.get(str(n), -1) for n in names], dtype=np.int32)
        return np.where(ids < len(SPECIALS), -1, ids).astype(np.int32)

    def save(self, path) -> None:
        """Writes the vocabulary as JSON: {"tokens": [...]}, atomically (temp file, rename)."""
        atomic_write(path, json.dumps({"tokens": self.tokens}))

    @classmethod
    def load(cls, path) -> "Vocab":
        """Reads a vocabulary written by `save`.

        Args:
          path: the JSON file.

        Returns:
          Vocab.

        Raises:
          FileNotFoundError: no such file.
          ValueError: not a vocabulary file.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocab path: got {str(path)!r}, which is not an existing file")
        try:
            tokens = json.loads(path.read_text())["tokens"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise ValueError(
                f"vocab path: cannot read {str(path)!r} ({type(e).__name__}: {e}); "
                'expected JSON {"tokens": [...]} written by Vocab.save'
            ) from e
        return cls(tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    __hash__ = None

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"Vocab(size={self.size}, genes={self.genes[:3]}...)"


@dataclasses.dataclass
class TokenizedCells:
    """Ragged token sequences: cell c is `genes[offsets[c]:offsets[c + 1]]` (<cls> first).

    Rows correspond one to one, in order, to the cells of the tokenised AnnData.

    Attributes:
      genes: int32 token ids of all cells, concatenated [N].
      values: float32 values [N], 0 at <cls>: bins 1..n_bins-1 ("binned") or log1p values.
      offsets: int64 [C + 1], offsets[0] = 0.
      labels: int32 [C], -1 when unknown.
      label_names: names of label ids.
      targets: float32 [N] log-normalised values log1p(count / total * target_sum), 0 at <cls>:
        the expression objective's targets whatever the value encoding; None in cells built
        without them.
      cell_ids: str [C], the AnnData's obs_names of the cells; None in cells built without them.
    """

    genes: Int[np.ndarray, " N"]
    values: Float[np.ndarray, " N"]
    offsets: Int[np.ndarray, " C+1"]
    labels: Int[np.ndarray, " C"]
    label_names: list
    targets: Float[np.ndarray, " N"] | None = None
    cell_ids: np.ndarray | None = None

    @property
    def lengths(self) -> Int[np.ndarray, " C"]:
        """Tokens per cell, <cls> included."""
        return np.diff(self.offsets).astype(np.int32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def cell(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(genes, values) of cell `c`."""
        a, b = self.offsets[c], self.offsets[c + 1]
        return self.genes[a:b], self.values[a:b]

    def subset(self, idx) -> "TokenizedCells":
        """The cells `idx` (indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
        lens = self.lengths[idx].astype(np.int64)
        offsets = np.zeros(len(idx) + 1, np.int64)
        offsets[1:] = np.cumsum(lens)
        # Source position of every output token: its cell's start plus its rank within the cell.
        take = np.repeat(self.offsets[idx] - offsets[:-1], lens) + np.arange(offsets[-1])
        return TokenizedCells(
            self.genes[take],
            self.values[take],
            offsets,
            self.labels[idx],
            list(self.label_names),
            None if self.targets is None else self.targets[take],
            None if self.cell_ids is None else self.cell_ids[idx],
        )


def bin_values(
    counts: Float[np.ndarray, " G"], n_bins: int, rng: np.random.Generator | None = None
) -> Float[np.ndarray, " G"]:
    """Per-cell quantile bins 1..n_bins-1 of positive values (0 is kept for <cls> and padding).

    Equal-frequency bins of the cell's own value distribution, as scGPT does: bin =
    floor(q * (n_bins - 1)) + 1 with q = (rank - 0.5) / n the mid-rank quantile. Without `rng`,
    tied values share the bin of their average rank; then all of a cell's count-1 genes (often
    half of them) sit in one bin, and a masked count-1 gene's bin can be read off the visible
    ones (a shortcut, docs/probes/recipe.md). With `rng`, ties are broken at random (as scGPT
    does): tied genes spread over the bins their ranks cover. The bins depend only on the order of
    the values, so counts, normalised counts and their log1p give the same bins.

    Args:
      counts: one cell's positive values.
      n_bins: number of bins, bin 0 included.
      rng: breaks ties at random when given; None = average rank.

    Returns:
      float32 bins.
    """
    if counts.size == 0:
        return counts.astype(np.float32)
    if rng is None:
        rank = scipy.stats.rankdata(counts, method="average")
    else:
        # Ordinal ranks of the values, ties in a random order.
        order = np.lexsort((rng.random(counts.size), counts))
        rank = np.empty(counts.size)
        rank[order] = np.arange(1, counts.size + 1)
    q = (rank - 0.5) / counts.size
    return (np.floor(q * (n_bins - 1)) + 1).astype(np.float32)


def select_genes(adata, method: str, n_top_genes: int, input_values: str = "auto") -> list:
    """The genes a model is built on (its vocabulary), from training cells.

    "top_expressed" and "all_expressed" keep every gene (cells then keep their highest-count or
    a random `max_len - 1` expressed genes). "highly_variable" keeps `n_top_genes` highly
    variable genes (scanpy `highly_variable_genes`, flavor "seurat", on counts normalised to
    1e4 and log1p), in the data's gene order: raw counts favour housekeeping genes, which say
    little about cell type, while HVGs are the genes PCA baselines and scGPT use.

    Args:
      adata: AnnData with counts in X (the training cells; in memory).
      method: one of GENE_SELECTIONS.
      n_top_genes: HVGs kept ("highly_variable" only; capped at the number of genes minus one).
      input_values: what X holds (see `tokenize`); read back to the count scale first.

    Returns:
      list of gene ids (`var_names`).

    Raises:
      ValueError: an unknown method, or n_top_genes < 1.
    """
    if method not in GENE_SELECTIONS:
        raise ValueError(f"data.gene_selection: got {method!r}, expected one of {GENE_SELECTIONS}")
    if method != "highly_variable":
        return [str(g) for g in adata.var_names]
    if int(n_top_genes) < 1:
        raise ValueError(f"data.n_top_genes: got {n_top_genes}, expected >= 1")
    import anndata as ad
    import scanpy as sc

    kind = resolve_values(adata.X, input_values, "adata.X (gene selection)")
    x = to_count_scale(sp.csr_matrix(adata.X), kind).astype(np.float32)
    work = ad.AnnData(X=x, var=adata.var[[]].copy())
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    n = min(int(n_top_genes), work.n_vars - 1)
    sc.pp.highly_variable_genes(work, n_top_genes=n, flavor="seurat")
    return [str(g) for g in work.var_names[work.var["highly_variable"].to_numpy()]]


def tokenize(
    adata,
    vocab: Vocab,
    *,
    max_len: int,
    value_encoding: str = "binned",
    n_bins: int = 51,
    target_sum: float = 1e4,
    input_values: str = "auto",
    bin_ties: str = "average",
    truncate: str = "top",
    seed: int = 0,
    chunk_size: int = _CHUNK,
) -> TokenizedCells:
    """Tokenises each cell as <cls> followed by its expressed genes, highest count first.

    Values: counts normalised to `target_sum` per cell (over all the cell's genes, matched to the
    vocabulary or not), log1p, then "binned" (per-cell quantile bins 1..n_bins-1, see
    `bin_values`) or "continuous" (the log1p value). "binned" is the default because bins depend
    only on the order of a cell's values: sequencing depth, batch scale and a data set's
    normalisation do not shift them, which makes pretraining across data sets and embedding new
    ones robust; "continuous" keeps magnitudes for within-data-set work. Bins are computed over all
    of the cell's expressed (and matched) genes before truncation, so a gene's value does not
    depend on `max_len`. Cells longer than `max_len` tokens keep their `max_len - 1` highest
    counts (ties by gene order), or with `truncate="random"` a random `max_len - 1` of its genes.
    Genes absent from `vocab` are dropped; a cell left with no gene becomes <cls> alone (kept, so
    rows still match `adata`; warned). The log1p values are also kept as `targets` for the
    expression objective.

    X is read as `input_values` says, one decision for all cells (`sigjax.data._values`): counts
    and normalised values (TPM, CPM) as they are, logged values (log1p, log2) mapped back to that
    scale first.

    Args:
      adata: AnnData with counts in X, in memory or backed (backed files are read in chunks).
      vocab: gene vocabulary; genes are matched by `var_names`.
      max_len: maximum tokens per cell, <cls> included (>= 2).
      value_encoding: "binned" or "continuous".
      n_bins: number of value bins, bin 0 included (>= 2; "binned" only).
      target_sum: library size after normalisation (> 0).
      input_values: what X holds: "auto" (detected and logged), "counts", "log1p", "log2" or
        "normalized" (see `sigjax.data._values`).
      bin_ties: "average" (tied values share a bin) or "random" (ties broken at random, seeded by
        `seed` and the cell's row; see `bin_values`).
      truncate: which genes a cell longer than max_len keeps: "top" (highest counts) or "random".
      seed: seed of the random tie-breaking and truncation.
      chunk_size: cells read at a time.

    Returns:
      TokenizedCells, one row per cell of `adata`; labels from `obs["cell_type"]` when present.

    Raises:
      ValueError: bad arguments, negative or non-finite values (see `resolve_values`), or no
        gene in the vocabulary.
    """
    from sigjax.data._anndata import LABEL_KEY

    if value_encoding not in VALUE_ENCODINGS:
        raise ValueError(
            f"data.value_encoding: got {value_encoding!r}, expected one of {VALUE_ENCODINGS}"
        )
    if int(max_len) < 2:
        raise ValueError(f"data.max_len: got {max_len}, expected >= 2 (<cls> plus one gene)")
    if int(n_bins) < 2:
        raise ValueError(f"data.n_bins: got {n_bins}, expected >= 2 (bin 0 is reserved)")
    if not target_sum > 0:
        raise ValueError(f"data.target_sum: got {target_sum}, expected > 0")
    if bin_ties not in BIN_TIES:
        raise ValueError(f"data.bin_ties: got {bin_ties!r}, expected one of {BIN_TIES}")
    if truncate not in ("top", "random"):
        raise ValueError(f"truncate: got {truncate!r}, expected 'top' or 'random'")
    gene_ids = vocab.encode(adata.var_names)
    known = np.flatnonzero(gene_ids >= 0)
    if known.size == 0:
        raise ValueError(
            f"genes: none of the {adata.n_vars} genes (e.g. {list(adata.var_names[:3])}) is in the "
            f"vocabulary of {vocab.n_genes} genes (e.g. {vocab.genes[:3]}); "
            "expected matching gene ids"
        )
    if known.size < adata.n_vars:
        log.info(
            "matched %d of %d genes to the vocabulary; dropping the rest", known.size, adata.n_vars
        )
    known_ids = gene_ids[known]
    kind = resolve_values(adata.X, input_values, "adata.X")  # One decision for all cells.
    genes_out, values_out, targets_out, lens = [], [], [], []
    for start in range(0, adata.n_obs, chunk_size):
        x = adata.X[start : start + chunk_size]
        # Dense chunks go to float64 before CSR: scipy.sparse refuses some dtypes (float16).
        x = sp.csr_matrix(to_count_scale(x.tocsr() if sp.issparse(x) else x, kind))
        totals = np.asarray(x.sum(axis=1)).ravel()
        x = x[:, known].tocsr()
        for r in range(x.shape[0]):
            lo, hi = x.indptr[r], x.indptr[r + 1]
            cols, counts = x.indices[lo:hi], x.data[lo:hi]
            keep = counts > 0
            cols, counts = cols[keep], counts[keep]
            # One generator per cell (seed, row): a cell's tokens do not depend on the chunking.
            rng = np.random.default_rng([seed, start + r])
            logs = np.log1p(counts / totals[r] * target_sum).astype(np.float32)
            if value_encoding == "binned":
                vals = bin_values(counts, n_bins, rng if bin_ties == "random" else None)
            else:
                vals = logs
            order = np.lexsort((cols, -counts))  # Highest count, then gene order.
            if truncate == "random" and order.size > max_len - 1:
                order = order[np.sort(rng.choice(order.size, max_len - 1, replace=False))]
            order = order[: max_len - 1]
            genes_out.append(np.concatenate([[CLS_ID], known_ids[cols[order]]]).astype(np.int32))
            values_out.append(np.concatenate([[0.0], vals[order]]).astype(np.float32))
            targets_out.append(np.concatenate([[0.0], logs[order]]).astype(np.float32))
            lens.append(order.size + 1)
    lens = np.asarray(lens, np.int64)
    n_bare = int(np.sum(lens == 1))
    if n_bare:
        log.warning("%d of %d cells have no expressed gene in the vocabulary", n_bare, len(lens))
    offsets = np.zeros(len(lens) + 1, np.int64)
    offsets[1:] = np.cumsum(lens)
    if LABEL_KEY in adata.obs.columns:
        col = adata.obs[LABEL_KEY]
        cat = col.astype(str).where(col.notna()).astype("category")
        labels = cat.cat.codes.to_numpy().astype(np.int32)  # NaN -> -1.
        label_names = [str(n) for n in cat.cat.categories]
    else:
        labels, label_names = np.full(len(lens), -1, np.int32), []
    return TokenizedCells(
        np.concatenate(genes_out) if genes_out else np.zeros(0, np.int32),
        np.concatenate(values_out) if values_out else np.zeros(0, np.float32),
        offsets,
        labels,
        label_names,
        np.concatenate(targets_out) if targets_out else np.zeros(0, np.float32),
        np.asarray(adata.obs_names.astype(str), dtype=object),
    )
