"""The metrics of a run: DIR/metrics.jsonl (one JSON row per logged step) and TensorBoard events.

`MetricsWriter` writes them during training (process 0 only); `read_metrics` reads them back for
evaluation, comparison and the stability report; `frozen_groups` finds the sub-blocks that stopped
moving, from the logged update ratios (used by the training loop and the stability report), and
`lagging_groups` those that move far slower than the rest.
"""

import gzip
import json
import logging
import pathlib
import time

import jax
import numpy as np

from sigjax._io import atomic_write

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
# A grid's committed record keeps the metrics gzip-compressed (a 161.5M run's are ~1.8 MB raw).
METRICS_GZ = METRICS_FILE + ".gz"
UPDATE_RATIO = "update_ratio/"  # Prefix of the per-group update/parameter norm ratios.
FROZEN_FRACTION = 1e-3  # A group below this fraction of the median of the others is frozen.
# A block's group below this fraction of the embedding's and head's median ratio is frozen too: they
# always get a gradient, so this sees a whole trunk at rest, which the rule above cannot (at 161.5M
# without the hybrid norm, frozen sigmoid groups sat at 1.5e-4 to 2.5e-3 of them; live runs are
# >= 8.9e-3).
FROZEN_VS_ENDS = 3e-3
ENDS = ("embed", "head")
# A group below this fraction of the median of the others, and not frozen, lags: it trains, but
# ~30x slower than the rest. Of the 113 committed runs (docs/data) with update ratios and no frozen
# group, two have a group below it, sigmoid's at LR 3e-2 at 161.5M (0.013x and 0.019x: attention
# sub-blocks 40-80x slower than their MLPs, docs/stability.md 5a and 5k); the next lowest is 0.054x.
LAG_FRACTION = 3e-2


class MetricsWriter:
    """metrics.jsonl and TensorBoard events, written by process 0 (a no-op on the others).

    At start, metrics.jsonl keeps only complete rows up to the step training resumes from: a
    killed run may have left a half-written line or rows of steps that will be redone. So each
    step appears once in a file written by this class, and a resumed run continues it.

    A run that starts from step 0 over rows of an earlier run (its checkpoints deleted, or a
    run killed before its first save) does not drop them: the old file is kept whole as
    metrics.before-<UTC time>.jsonl beside it, with a warning, and metrics.jsonl starts empty.

    Args:
      workdir: the run directory.
      start_step: the step training starts (or resumes) from; later rows are dropped.
    """

    def __init__(self, workdir: pathlib.Path, start_step: int):
        self.main = jax.process_index() == 0
        if not self.main:
            return
        from tensorboardX import SummaryWriter

        path = pathlib.Path(workdir) / METRICS_FILE
        if path.exists() and start_step == 0:
            _keep_aside(path)
        if path.exists():
            kept = []
            for line in path.read_text().splitlines(keepends=True):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if line.endswith("\n") and row.get("step", start_step + 1) <= start_step:
                    kept.append(line)
            atomic_write(path, "".join(kept))
        self.file = open(path, "a")  # noqa: SIM115 - closed in close().
        self.tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))

    def write(self, step: int, metrics: dict) -> None:
        """Appends one row {"step": step, **metrics} (floats) and its TensorBoard scalars."""
        if not self.main:
            return
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        for k, v in row.items():
            if k != "step" and np.isfinite(v):
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        """Closes the files."""
        if self.main:
            self.file.close()
            self.tb.close()


def _keep_aside(path: pathlib.Path) -> None:
    """Renames a metrics.jsonl with complete rows to metrics.before-<UTC time>.jsonl, warning."""
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(int(json.loads(line)["step"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    if not steps:
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept, n = path.with_name(f"metrics.before-{stamp}.jsonl"), 1
    while kept.exists():  # Two restarts within a second.
        kept, n = path.with_name(f"metrics.before-{stamp}-{n}.jsonl"), n + 1
    path.rename(kept)
    log.warning(
        "%s held %d rows (steps %d-%d) but no checkpoint to resume from: training starts at step "
        "0 and the old rows are kept in %s",
        path,
        len(steps),
        min(steps),
        max(steps),
        kept,
    )


def read_metrics(workdir) -> list[dict]:
    """The rows of DIR/metrics.jsonl (or a grid record's metrics.jsonl.gz), one per logged step,
    in step order.

    `MetricsWriter` writes each step once. A file holding a step twice (written before the writer
    dropped redone steps on resume, or joined by hand) is read with the later row winning, merged
    key by key. NaN and Infinity (written by json for non-finite values) are read back as floats.

    Args:
      workdir: a training run directory.

    Returns:
      Rows (dicts with "step" and the logged metrics), sorted by step.

    Raises:
      FileNotFoundError: no metrics.jsonl in workdir.
      ValueError: a line that is not a JSON object with a "step".
    """
    path, gz = pathlib.Path(workdir) / METRICS_FILE, pathlib.Path(workdir) / METRICS_GZ
    if path.is_file():
        text = path.read_text()
    elif gz.is_file():
        path, text = gz, gzip.decompress(gz.read_bytes()).decode()
    else:
        raise FileNotFoundError(
            f"run: no {METRICS_FILE} (or {METRICS_GZ}) in {workdir}; expected a training run "
            "directory or a grid record"
        )
    rows = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(
                f"run: {path} line {n} is not a metrics row ({e}); expected a JSON object with "
                "'step'"
            ) from e
        rows[step] = {**rows.get(step, {}), **row, "step": step}
    return [rows[s] for s in sorted(rows)]


def median_update_ratios(rows) -> dict[str, float]:
    """Each group's median `update_ratio/<group>` over the rows (non-finite values left out).

    Args:
      rows: one metrics row (dict) or a sequence of them.

    Returns:
      {group (e.g. "block_0/mlp"): median ratio}, in logged order; empty without ratios.
    """
    rows = [rows] if isinstance(rows, dict) else list(rows)
    values: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            if k.startswith(UPDATE_RATIO) and v is not None and np.isfinite(float(v)):
                values.setdefault(k[len(UPDATE_RATIO) :], []).append(float(v))
    return {name: float(np.median(v)) for name, v in values.items()}


def frozen_groups(
    rows, fraction: float = FROZEN_FRACTION, ends_fraction: float | None = FROZEN_VS_ENDS
) -> dict[str, float]:
    """The groups that barely move: below `fraction` x the median of the other groups' update
    ratios, or (a block's group) below `ends_fraction` x the median of the embedding's and head's.

    The update ratio of a group (`update_ratio/<group>`, logged by `train_step`) is the norm of
    its optimizer update over the norm of its parameters. Adam makes healthy groups move at
    similar ratios, so one far below the others (a dead MLP, a sub-block cut off from the loss,
    a zero learning rate) is frozen. When most blocks are frozen together, the median of the
    others is frozen as well and the first rule sees nothing; the embedding and the head always
    get a gradient from the loss, so the second rule compares each block's group with them (at
    161.5M without the hybrid norm, sigmoid's MLPs had gradients of 1e-8 and ratios ~1e-3 of the
    ends', while every other group's median looked ordinary). Given several rows, each group's
    ratio is its median over them (non-finite values left out), so one odd step neither raises
    nor hides a warning. Steps where every group stands still (learning rate 0 at the start of
    warmup) flag nothing.

    Args:
      rows: one metrics row (dict) or a sequence of them.
      fraction: threshold relative to the median of the other groups (> 0).
      ends_fraction: threshold for `block_*` groups relative to the median of the "embed" and
        "head" ratios (> 0; the rule applies when both were logged and move); None turns this
        rule off.

    Returns:
      {group (e.g. "block_0/mlp"): its ratio / the reference it fell below (the smaller factor
      when it fell below both)}, for the frozen groups, in logged order; empty when none is
      frozen or fewer than two groups were logged.

    Raises:
      ValueError: `fraction` or `ends_fraction` not > 0.
    """
    checked = {"fraction": fraction}
    if ends_fraction is not None:
        checked["ends_fraction"] = ends_fraction
    for name, value in checked.items():
        if not value > 0:
            raise ValueError(f"{name}: got {value!r}, expected a number > 0")
    ratios = median_update_ratios(rows)
    ends = [ratios[name] for name in ENDS if name in ratios]
    use_ends = ends_fraction is not None and len(ends) == len(ENDS)
    ends_median = float(np.median(ends)) if use_ends else 0.0
    frozen = {}
    for name, r in ratios.items():
        factors = []
        others = [v for other, v in ratios.items() if other != name]
        median = float(np.median(others)) if others else 0.0
        if r < fraction * median:
            factors.append(r / median)
        if use_ends and name.startswith("block_") and r < ends_fraction * ends_median:
            factors.append(r / ends_median)
        if factors:
            frozen[name] = min(factors)
    return frozen


def lagging_groups(rows, fraction: float = LAG_FRACTION) -> dict[str, float]:
    """The groups that train, but far slower than the rest: below `fraction` x the median of the
    other groups' update ratios, and not frozen (`frozen_groups` with its defaults).

    A stable run whose attention sub-blocks all lag has a network that hardly uses attention any
    more; `frozen_groups`, tuned to catch dead groups, does not flag it.

    Args:
      rows: one metrics row (dict) or a sequence of them (medians per group, as in
        `frozen_groups`).
      fraction: threshold relative to the median of the other groups (> 0).

    Returns:
      {group: its ratio / the others' median}, in logged order; empty when none lags.

    Raises:
      ValueError: `fraction` not > 0.
    """
    frozen = frozen_groups(rows)
    slow = frozen_groups(
        rows, fraction=fraction, ends_fraction=None
    )  # Relative to the others only.
    return {name: rel for name, rel in slow.items() if name not in frozen}


def _named(groups: dict[str, float]) -> str:
    """The groups of `frozen_groups` or `lagging_groups` as "name (factor x), ..."."""
    return ", ".join(f"{name} ({rel:.2g}x)" for name, rel in groups.items())


def lagging_message(lagging: dict[str, float], fraction: float = LAG_FRACTION) -> str:
    """One line naming the lagging groups of `lagging_groups` and how far below the others they
    are."""
    return (
        f"lagging sub-blocks: {_named(lagging)}: update/parameter norm ratio below {fraction:g} x "
        "the median of the other groups'; they train, slowly"
    )


def frozen_message(
    frozen: dict[str, float],
    fraction: float = FROZEN_FRACTION,
    ends_fraction: float = FROZEN_VS_ENDS,
) -> str:
    """One line naming the frozen groups of `frozen_groups` and how far below the others they
    are."""
    return (
        f"frozen sub-blocks: {_named(frozen)}: update/parameter norm ratio below {fraction:g} x "
        f"the median of the other groups' ratios or {ends_fraction:g} x the embedding's and "
        "head's (the factor is in brackets); these parts of the network barely train"
    )
