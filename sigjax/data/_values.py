"""What the values of an expression matrix are, and how they are read: one path for training,
embedding and the PCA baseline.

Kinds (`data.input_values` in a training config, `--values` of `python -m eval embed`):

- "counts": raw counts (UMI or reads), whole numbers.
- "normalized": normalised but not logged (TPM, CPM, `normalize_total` without `log1p`).
- "log1p": log-normalised, ln(1 + x) of counts or normalised values (scanpy's `log1p`).
- "log2": log2(1 + x) of counts or normalised values (e.g. log2(TPM + 1) of full-length data).
- "auto": decided from the data: whole numbers -> "counts"; non-integer values with a maximum of
  at most `LOG1P_MAX` -> "log1p" (ln(1 + x) of counts normalised to 1e4 or even 1e6 per cell
  stays below 14), or "log2" when a sample of cells sums to one constant after 2^x - 1 and not
  after e^x - 1 (logged values of per-cell normalised data, in base 2; base 2 of unnormalised
  counts cannot be told from ln and is read as "log1p": say "log2" then); larger non-integer
  values -> "normalized". The decision and its reason are logged in one line.

Tokenisation normalises every cell to `target_sum` and takes log1p, so it needs values that are
a per-cell multiple of counts: "counts" and "normalized" are used as they are (a per-cell scale
cancels in the normalisation), "log1p" and "log2" values are mapped back (e^x - 1, 2^x - 1, in
float64) first. The tokens of a log-normalised file therefore equal those of the counts it was
made from, and training and embedding read every file the same way.
"""

import logging

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

VALUES = ("auto", "counts", "log1p", "log2", "normalized")
LOGGED = ("log1p", "log2")  # Kinds mapped back to the count scale before tokenisation.
# What runs saved before the field existed did in training: values tokenised as they were, never
# expm1'd. The resume check reads a missing `data.input_values` as this.
LEGACY_VALUES = "counts"
LOG1P_MAX = 20.0  # "auto": non-integer values up to this are log1p values.
# Explicit "log1p": larger values are not ln(1 + x) of expression (expm1(100) ~ 2.7e43, and sums of
# many such values would come near float64's limit), so they are refused, never overflowed.
LOG1P_LIMIT = 100.0
# "auto" on logged values: cells (spread over the file) whose sums after 2^x - 1 and e^x - 1
# decide the base, and the relative spread of those sums that counts as one constant.
_BASE_CELLS, _CONSTANT_SUM = 1000, 1e-3
_BLOCK = 1 << 24  # Values scanned at a time (bounds the temporaries of the integer test).
_ROWS = 4096  # Rows read at a time from a backed (on-disk) matrix.


def _stored_values(x):
    """Yields the stored values of a dense, sparse or backed matrix, in blocks."""
    if sp.issparse(x) or isinstance(x, np.ndarray):
        values = x.data if sp.issparse(x) else np.asarray(x).ravel()
        for start in range(0, values.size, _BLOCK):
            yield values[start : start + _BLOCK]
        return
    if not hasattr(x, "shape") or len(x.shape) != 2:
        raise TypeError(f"values: got {type(x).__name__}, expected a 2-D matrix")
    for start in range(0, x.shape[0], _ROWS):  # Backed: read rows chunk by chunk.
        chunk = x[start : start + _ROWS]
        yield from _stored_values(chunk if sp.issparse(chunk) else np.asarray(chunk))


def value_stats(x) -> dict:
    """Minimum, maximum, finiteness and whole-numberness of the stored values of `x`.

    Args:
      x: a dense, sparse or backed matrix.

    Returns:
      {"n": stored values, "min", "max" (0.0 when empty), "finite": bool, "integer": bool}.
    """
    n, low, high, finite, integer = 0, np.inf, -np.inf, True, True
    for v in _stored_values(x):
        if not v.size:
            continue
        n += v.size
        ok = np.isfinite(v)
        if not ok.all():
            finite = False
            v = v[ok]
            if not v.size:
                continue
        low, high = min(low, float(v.min())), max(high, float(v.max()))
        if integer:
            integer = bool(np.all(v == np.rint(v)))
    if not np.isfinite(low):
        low = high = 0.0
    return {"n": n, "min": low, "max": high, "finite": finite, "integer": integer}


def detect_values(stats: dict) -> tuple[str, str]:
    """The kind of values "auto" picks, and why (one phrase for the log line).

    Args:
      stats: `value_stats` of the matrix.

    Returns:
      (kind, reason).
    """
    if stats["integer"]:
        return "counts", f"all values are whole numbers (max {stats['max']:g})"
    if stats["max"] <= LOG1P_MAX:
        return "log1p", (
            f"non-integer values with max {stats['max']:.4g} <= {LOG1P_MAX:g} look "
            "log-normalised; expm1 before normalising"
        )
    return "normalized", (
        f"non-integer values with max {stats['max']:.4g} > {LOG1P_MAX:g} look normalised "
        "but not logged (TPM, CPM)"
    )


def _sum_spread(x, kind: str) -> float:
    """Relative spread (std / mean) of the cells' sums of `x` mapped back as `kind`."""
    sums = np.asarray(to_count_scale(x, kind).sum(axis=1)).ravel()
    sums = sums[sums > 0]
    return float(np.std(sums) / np.mean(sums)) if sums.size > 1 else np.inf


def _logged_base(x) -> tuple[str, str] | None:
    """("log2", reason) when cells of `x` sum to one constant after 2^x - 1 and not after e^x - 1
    (log2 of per-cell normalised values), else None (read as ln)."""
    n = x.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, _BASE_CELLS)).astype(np.int64))
    sample = x[rows]
    sample = sample if sp.issparse(sample) else np.asarray(sample)
    spread_2, spread_e = _sum_spread(sample, "log2"), _sum_spread(sample, "log1p")
    if spread_2 <= _CONSTANT_SUM and spread_2 * 10 < spread_e:
        return "log2", (
            f"2^x - 1 of {len(rows)} cells sums to one constant (spread {spread_2:.1e}, "
            f"e^x - 1: {spread_e:.1e}): log2(1 + x) of normalised values"
        )
    return None


def check_values(stats: dict, where: str, hint: str = "") -> None:
    """Raises ValueError for non-finite or negative values (e.g. scaled data).

    Args:
      stats: `value_stats` of the matrix.
      where: names the data in the message.
      hint: appended to the message (e.g. "try --use_raw").
    """
    hint = f"; {hint}" if hint else ""
    if not stats["finite"]:
        raise ValueError(
            f"{where}: found non-finite values (NaN or inf); expected finite values >= 0{hint}"
        )
    if stats["min"] < 0:
        raise ValueError(
            f"{where}: found negative values (min {stats['min']:.4g}; scaled or centred data?); "
            f"expected counts, normalised or log1p values >= 0{hint}"
        )


def resolve_values(
    x, values: str = "auto", where: str = "data", hint: str = "", stats: dict | None = None
) -> str:
    """Checks the values of `x` and the kind they are read as; logs the decision in one line.

    Args:
      x: the expression matrix (dense, sparse or backed), cells in rows.
      values: one of `VALUES`; "auto" detects the kind (see the module docstring).
      where: names the data in messages.
      hint: appended to error messages about the values (e.g. "try --use_raw").
      stats: `value_stats(x)`, if already computed.

    Returns:
      "counts", "log1p", "log2" or "normalized".

    Raises:
      ValueError: `values` not one of `VALUES`; non-finite or negative values; "log1p" or "log2"
        for values above `LOG1P_LIMIT`, which are no logged values.
    """
    if values not in VALUES:
        raise ValueError(f"data.input_values: got {values!r}, expected one of {VALUES}")
    stats = value_stats(x) if stats is None else stats
    check_values(stats, where, hint)
    if values == "auto":
        kind, reason = detect_values(stats)
        if kind == "log1p":
            kind, reason = _logged_base(x) or (kind, reason)
        log.info("%s: values read as %r (input_values='auto': %s)", where, kind, reason)
        return kind
    if values in LOGGED and stats["max"] > LOG1P_LIMIT:
        raise ValueError(
            f"data.input_values: got {values!r}, but {where} holds values up to "
            f"{stats['max']:.4g}, more than logged values reach (< {LOG1P_LIMIT:g}); expected "
            "'normalized' (TPM, CPM), 'counts' or 'auto'"
        )
    if values == "counts" and not stats["integer"]:
        log.warning(
            "%s: values are not whole numbers (max %.4g) but are read as 'counts', as asked "
            "(data.input_values or --values, or the behaviour of runs older than that field); "
            "pass --values=log1p for log-normalised data, 'normalized' for TPM or CPM, or 'auto'",
            where,
            stats["max"],
        )
    # Debug only: an explicit kind needs no explaining (embedding resolves first, then passes it).
    log.debug("%s: values read as %r (as asked; max %.4g)", where, values, stats["max"])
    return values


def to_count_scale(x, kind: str):
    """Values as a per-cell multiple of counts, float64: e^x - 1 for "log1p", 2^x - 1 for "log2",
    else as they are.

    Args:
      x: a dense or sparse matrix (in memory), checked by `resolve_values`.
      kind: "counts", "log1p", "log2" or "normalized" (from `resolve_values`).

    Returns:
      A float64 matrix of the same type; `x` is not changed.
    """

    def back(v):
        if kind == "log2":
            return np.expm1(v * np.log(2.0))  # 2^v - 1, accurate near 0.
        return np.expm1(v) if kind == "log1p" else v

    if sp.issparse(x):
        x = x.astype(np.float64)  # A copy: the caller's data are not changed.
        x.data = back(x.data)
        return x
    return back(np.asarray(x, np.float64))
