"""Grids of training runs from one config: the runs, resuming, and each run's record.

A grid config is a training config (configs/default.py) with a `grid` section naming the runs:
`grid.datasets` x `grid.attentions` x `grid.learning_rates` x `grid.seeds` (see
configs/study_base.py, configs/stress_160m_grid.py). Every run trains in its own work directory
(checkpoints: large, not committed) and, once finished, leaves a small record beside the others:
RECORD/<dataset>/<run>/ with run.json (what ran, on which commit, date and device, how it ended),
metrics.jsonl.gz (gzipped) and config.json from the work directory, and scores.json when the grid
scores its runs. run.json is written last, so it marks a finished run: a rerun skips every run
that has one, and the records alone (committed to docs/data/) hold everything the tables and
plots are made from. A run killed mid-training resumes from its latest checkpoint.
"""

import copy
import dataclasses
import datetime
import gzip
import json
import logging
import math
import os
import pathlib
import platform
import shutil
import time
from collections.abc import Callable

from sigjax._io import atomic_write, git_commit
from sigjax.training._metrics import METRICS_FILE, METRICS_GZ

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
# Files copied from a finished run's work directory into its record (all small); the metrics go
# in gzip-compressed (METRICS_GZ: a 161.5M run's are ~1.8 MB raw, ~0.3 MB compressed).
RECORD_FILES = ("config.json",)
FINISHED, NON_FINITE = "finished", "non-finite"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a grid: what differs between the runs of a grid config."""

    dataset: str
    attention: str
    learning_rate: float
    seed: int

    @property
    def name(self) -> str:
        """The run's directory name, e.g. "sigmoid_lr0.003_seed1"."""
        return f"{self.attention}_lr{self.learning_rate:g}_seed{self.seed}"

    def path(self, root) -> pathlib.Path:
        """ROOT/<dataset>/<name>."""
        return pathlib.Path(root) / self.dataset / self.name


def grid_cells(datasets, attentions, learning_rates, seeds) -> list[Cell]:
    """Every combination, seed-major: an interrupted grid holds whole seeds of every setting,
    and within a seed both attentions of a (data set, learning rate) one after the other.

    Raises:
      ValueError: an empty list, or a learning rate that is not a finite number > 0.
    """
    for arg, values in (
        ("datasets", datasets),
        ("attentions", attentions),
        ("learning_rates", learning_rates),
        ("seeds", seeds),
    ):
        if not len(values):
            raise ValueError(f"{arg}: got an empty list, expected at least one value")
    for lr in learning_rates:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning_rates: got {lr!r}, expected finite numbers > 0")
    return [
        Cell(d, a, float(lr), int(s))
        for s in seeds
        for d in datasets
        for lr in learning_rates
        for a in attentions
    ]


def shard_cells(cells: list[Cell], shard: str | None) -> list[Cell]:
    """The runs of one of several processes sharing a grid (e.g. one per GPU): "i/n" keeps runs
    i, i+n, i+2n, ...; None keeps all.

    Raises:
      ValueError: a shard not of the form "i/n" with 0 <= i < n.
    """
    if not shard:
        return list(cells)
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"shard: got {shard!r}, expected 'i/n' with 0 <= i < n (e.g. '0/2')")
    return list(cells)[i::n]


def grid_from_config(config, **given) -> list[Cell]:
    """The runs named by `config.grid` (datasets default to (config.data.dataset,), learning rates
    to (config.train.learning_rate,)); a non-None keyword (datasets, attentions, learning_rates,
    seeds) replaces the config's list (a single run from the command line)."""
    g = config.get("grid") or {}
    lists = {
        "datasets": g.get("datasets") or (config.data.dataset,),
        "attentions": g.get("attentions") or (config.model.attention,),
        "learning_rates": g.get("learning_rates") or (config.train.learning_rate,),
        "seeds": g.get("seeds") or (config.seed,),
    }
    lists.update({k: v for k, v in given.items() if v is not None})
    return grid_cells(**lists)


def run_config(base, cell: Cell):
    """`base` for one run: data set, attention, learning rate and seeds set, `grid` section left
    out (the run's config.json holds only what training reads).

    `config.seed` (parameters, masks) and `config.data.seed` (train/validation split, batch order)
    are both the run's seed, so the runs of one seed see the same cells, batches and initial
    parameters and differ only in what the cell sets.
    """
    config = copy.deepcopy(base)
    if "grid" in config:
        del config["grid"]
    if cell.dataset != config.data.dataset:
        config.data.path = ""  # The path belongs to the base's data set.
    config.data.dataset = cell.dataset
    config.model.attention = cell.attention
    config.train.learning_rate = cell.learning_rate
    config.seed = cell.seed
    config.data.seed = cell.seed
    return config


def use_compilation_cache(workdir_root) -> str:
    """Turns on JAX's persistent compilation cache in WORKDIR/jax_cache, unless the environment
    names one (JAX_COMPILATION_CACHE_DIR). The runs of one setting that differ only in their seed
    compile the same programs, so all but the first load them instead of compiling.

    Returns:
      The cache directory in use.
    """
    import jax

    path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(
        pathlib.Path(workdir_root) / "jax_cache"
    )
    jax.config.update("jax_compilation_cache_dir", path)
    return path


def device_text() -> str:
    """The first device, its kind, the host's cores and processor, and the jax version."""
    import jax

    d = jax.devices()[0]
    return (
        f"{d.platform.upper()} ({getattr(d, 'device_kind', '')}) x{jax.device_count()}, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
        f"jax {jax.__version__}"
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def read_record(record_dir) -> dict | None:
    """A finished run's record as one row: the cell's fields, run.json's provenance and status,
    and scores.json's numbers when there are scores; None when the run has not finished."""
    record_dir = pathlib.Path(record_dir)
    path = record_dir / RUN_FILE
    if not path.exists():
        return None
    run = json.loads(path.read_text())
    row = {**run["cell"], **{k: v for k, v in run.items() if k != "cell"}}
    scores = record_dir / "scores.json"
    if scores.exists():
        row.update(json.loads(scores.read_text()))
    row["record"] = str(record_dir)
    return row


def read_records(record_root) -> list[dict]:
    """Every finished run under RECORD (RECORD/<dataset>/<run>/run.json), in directory order."""
    root = pathlib.Path(record_root)
    rows = [read_record(p.parent) for p in sorted(root.glob(f"*/*/{RUN_FILE}"))]
    return [r for r in rows if r is not None]


def run_cell(
    base,
    cell: Cell,
    workdir_root,
    record_root,
    *,
    score: Callable[[pathlib.Path], dict] | None = None,
    command: str = "",
    delete_checkpoints: bool = False,
) -> dict:
    """Trains one run (or resumes it) and writes its record; a finished run is only read back.

    A run whose training stops on a non-finite step (`NonFiniteError`) is finished too, with
    status "non-finite" and the error in run.json: rerunning it would reach the same step again.
    It is not scored.

    Args:
      base: the grid config.
      cell: the run.
      workdir_root: runs train in WORKDIR/<dataset>/<run>.
      record_root: records go to RECORD/<dataset>/<run> (may equal the work directory).
      score: called with the work directory of a finished run; its dict goes to scores.json.
      command: the command line, recorded in run.json.
      delete_checkpoints: once the record is written, delete WORKDIR/checkpoints (a 160M run's
        is ~2 GB; the record holds all the tables need). Not when the record is the workdir.

    Returns:
      The run's row (`read_record`).
    """
    from sigjax.training import NonFiniteError, train_and_evaluate

    record = cell.path(record_root)
    done = read_record(record)
    if done is not None:
        print(f"== {cell.dataset} {cell.name}: done ({done['status']}), skipping", flush=True)
        return done
    workdir = cell.path(workdir_root)
    print(f"== {cell.dataset} {cell.name}: training in {workdir}", flush=True)
    # A rerun after a kill continues from the checkpoint: train_time_s is then this part only.
    resumed = (workdir / "checkpoints").is_dir()
    started, t0 = _now(), time.perf_counter()
    status, error = FINISHED, None
    try:
        train_and_evaluate(run_config(base, cell), workdir)
    except NonFiniteError as e:
        status, error = NON_FINITE, str(e)
        log.warning("%s %s: %s", cell.dataset, cell.name, e)
    train_time = time.perf_counter() - t0
    record.mkdir(parents=True, exist_ok=True)
    if record.resolve() != workdir.resolve():
        for name in RECORD_FILES:
            if (workdir / name).exists():
                shutil.copyfile(workdir / name, record / name)
        if (workdir / METRICS_FILE).exists():
            data = gzip.compress((workdir / METRICS_FILE).read_bytes(), mtime=0)
            atomic_write(record / METRICS_GZ, data)
            (record / METRICS_FILE).unlink(missing_ok=True)  # From a record written before.
    score_start = time.perf_counter()
    if score is not None and status == FINISHED:
        atomic_write(record / "scores.json", json.dumps(score(workdir), indent=2))
    run = {
        "cell": dataclasses.asdict(cell),
        "status": status,
        "error": error,
        "train_time_s": train_time,
        "score_time_s": time.perf_counter() - score_start,
        "resumed": resumed,
        "started": started,
        "ended": _now(),
        "commit": git_commit() or "unknown",
        "device": device_text(),
        "command": command,
        "workdir": str(workdir),
    }
    atomic_write(record / RUN_FILE, json.dumps(run, indent=2))  # Last: marks the run finished.
    if delete_checkpoints and record.resolve() != workdir.resolve():
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    return read_record(record)
