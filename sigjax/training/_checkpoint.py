"""The run directory: Orbax checkpoints (state plus data position), config.json and vocab.json,
and `load_model`, which reads a run back for inference.

The rules that keep a run safe live here:
- a checkpoint holds only finite parameters (the step checks them before applying an update;
  `load_model` and resume refuse a non-finite checkpoint);
- every checkpoint carries a fingerprint of its state, checked when it is read back, so a
  truncated, deleted or bit-flipped file is found, and the newest checkpoint that restores intact
  is used (the others are logged as skipped);
- a resume compares the new config with the saved one before anything is written: only the
  fields in `RESUME_SAFE` may differ.
"""

import contextlib
import json
import logging
import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx

from sigjax._io import atomic_write
from sigjax.data import LEGACY_VALUES, Vocab, split_fingerprint, split_rows
from sigjax.model import EncoderConfig
from sigjax.training._mesh import single_device_mesh
from sigjax.training._steps import Setup, all_finite, make_setup

log = logging.getLogger(__name__)

CONFIG_FILE, VOCAB_FILE, CHECKPOINTS = "config.json", "vocab.json", "checkpoints"
SPLIT_FILE = "split.json"  # sigjax.data.split_fingerprint of the cells the run split.
SKIPPED = "skipped_checkpoints"  # Checkpoints that did not restore, moved aside on resume.

# Fields a resumed run may change. None of them changes what a step computes: how long to train,
# how often to log, evaluate and save, how many checkpoints to keep, the progress bar, the
# device layout (checkpoints restore into any mesh) and how the data file is opened (backed or in
# memory, the same cells either way). Every other field, anywhere in the config,
# changes shapes or meaning (a learning-rate schedule, a seed, a data field), so a run with
# another value is another run: resuming with it is refused. train.num_steps stretches the cosine
# decay over the new length from the resume step on; that is the documented way to extend a run.
RESUME_SAFE = frozenset(
    {
        "train.num_steps",
        "train.log_every",
        "train.eval_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.progress_bar",
        "distributed",
        "mesh.data",
        "mesh.fsdp",
        "data.backed",
        "model.remat",  # Recomputes the same values: speed and memory only.
        "model.readout",  # Acts when embedding only, never in training.
    }
)

# Config fields added after the first release, outside config.model, with the value that keeps
# the behaviour runs had before the field existed: a saved config.json without the field reads as
# that value (on resume and in `load_model`). A new field goes here in the same commit that adds
# it to configs/default.py. A new config.model field needs no entry: its `EncoderConfig` default
# plays this role (see `added_defaults`).
ADDED_FIELDS: dict[str, object] = {
    "data.input_values": LEGACY_VALUES,  # Values were read as they were, never expm1'd.
    "data.bin_ties": "average",  # Tied counts shared one bin.
    "data.gene_selection": "top_expressed",
    "data.n_top_genes": 1000,  # Unused by top_expressed; compared as the default.
    "data.datasets": "",  # Used by dataset="pooled" only (added with it).
    "data.min_cells": 1,  # Used by dataset="pooled" only (added with it).
    "train.eps": 1e-8,  # Adam's epsilon was optax's default.
}


def added_defaults() -> dict:
    """{dotted field: old-behaviour value} of every field added after the first release."""
    model = {f"model.{k}": v for k, v in EncoderConfig.added_defaults().items()}
    return {**model, **ADDED_FIELDS}


def checkpoint_manager(workdir: pathlib.Path, tc) -> ocp.CheckpointManager:
    """Async Orbax manager keeping the latest `tc.keep_checkpoints`; half-written ones from a
    killed run are removed at start (cleanup_tmp_directories) and never restored."""
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(tc.keep_checkpoints),
        enable_async_checkpointing=True,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager((workdir / CHECKPOINTS).absolute(), options=options)


def _words(x: jax.Array) -> jax.Array:
    """The bits of `x` as uint32 words (one per element; two for 8-byte elements)."""
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    size = x.dtype.itemsize
    if size < 4:
        return jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{8 * size}")).astype(jnp.uint32)
    return jax.lax.bitcast_convert_type(x, jnp.uint32)


@jax.jit
def _fingerprint(state) -> jax.Array:
    # A wrapping uint32 sum of every word: any single flipped bit changes it (by 2^k mod 2^32),
    # integer sums are exact in any order, so every mesh and process count gives the same value,
    # and it costs one pass over the state, on the devices.
    return sum(
        (jnp.sum(_words(x), dtype=jnp.uint32) for x in jax.tree.leaves(state)),
        jnp.zeros((), jnp.uint32),
    )


def fingerprint(state) -> int:
    """A checksum of a train state's bits, saved with each checkpoint and checked on restore."""
    return int(jax.device_get(_fingerprint(state)))


_all_finite = jax.jit(all_finite)


def save(mngr: ocp.CheckpointManager, step: int, state, loader_state: dict, config) -> None:
    """Saves the train state of `step` (asynchronously) with its metadata: step, the data
    loader's position after the step's batch, the config and the state's fingerprint.

    Raises:
      ValueError: the state holds non-finite parameters (never saved; the train step refuses
        such updates, so this is a bug guard, not a path users reach).
    """
    if not bool(jax.device_get(_all_finite(state["params"]))):
        raise ValueError(f"checkpoint of step {step}: non-finite parameters; not saved")
    meta = {
        "step": step,
        "loader": loader_state,
        "config": config_json(config),
        "fingerprint": fingerprint(state),
    }
    mngr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
    )


def restore(mngr: ocp.CheckpointManager, step: int, setup: Setup):
    """The train state of `step`, restored straight into the target shardings, and its metadata.

    No check beyond Orbax's own; `restore_newest` checks the fingerprint and the parameters.
    """
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        setup.abstract,
        setup.shardings,
    )
    out = mngr.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        ),
    )
    return out["state"], out["meta"]


def _reason(e: BaseException) -> str:
    """One short line for an exception: its root cause (Orbax wraps TensorStore's precise error,
    such as a byte range past the end of a truncated file, in a generic one), whitespace joined,
    cut at 240 characters (TensorStore messages span many lines)."""
    seen = {id(e)}
    while (e.__cause__ or e.__context__) is not None and id(
        e.__cause__ or e.__context__
    ) not in seen:
        e = e.__cause__ or e.__context__
        seen.add(id(e))
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:240]}{'...' if len(text) > 240 else ''}"


class _DropOrphanedReads:
    """A sys.unraisablehook that drops the errors of orphaned checkpoint reads and passes on the
    rest.

    When Orbax gives up on a checkpoint, TensorStore reads still in flight complete into its
    closed event loop, and each reports RuntimeError("Event loop is closed") through
    sys.unraisablehook: dozens of tracebacks after the one failure `restore_newest` already logs.
    On a loaded machine some of those reads finish first and fail on the same corrupt file; their
    never-awaited coroutines then report Orbax's "Encountered error while reading array index"
    the same way (seen under load in tests/training/test_checkpoint.py).
    """

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, unraisable):
        exc = unraisable.exc_value
        closed = isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"
        orphaned = str(exc).startswith("Encountered error while reading array index")
        if not (closed or orphaned):
            self.previous(unraisable)


@contextlib.contextmanager
def _quiet_orphaned_reads():
    """Installs `_DropOrphanedReads` while a checkpoint is read. A failed read leaves it
    installed: its orphaned reads may complete at any later time."""
    if isinstance(sys.unraisablehook, _DropOrphanedReads):
        yield
        return
    previous = sys.unraisablehook
    hook = sys.unraisablehook = _DropOrphanedReads(previous)
    yield  # An exception propagates from here and leaves the hook in place.
    if sys.unraisablehook is hook:
        sys.unraisablehook = previous


def restore_newest(mngr: ocp.CheckpointManager, setup: Setup, steps, workdir):
    """The newest of `steps` that restores intact: (step, state, meta, skipped).

    A checkpoint is skipped, with a warning saying why, when Orbax cannot read it (a truncated,
    deleted or unreadable file, an emptied step folder) or when its state does not match the
    fingerprint saved with it (a flipped bit). Checkpoints saved before fingerprints existed are
    accepted as Orbax reads them.

    Args:
      mngr: the run's checkpoint manager.
      setup: the state's layout (`make_setup`).
      steps: candidate steps.
      workdir: the run directory (for messages).

    Returns:
      (step, state, meta, [(skipped step, reason), ...]).

    Raises:
      ValueError: no candidate restores (one line listing each with its reason), or the newest
        intact checkpoint holds non-finite parameters.
    """
    skipped = []
    for step in sorted(steps, reverse=True):
        try:
            with _quiet_orphaned_reads():
                state, meta = restore(mngr, step, setup)
        except Exception as e:  # noqa: BLE001 - any read failure marks the checkpoint corrupt; logged.
            reason = _reason(e)
        else:
            saved = meta.get("fingerprint")
            got = fingerprint(state) if saved is not None else None
            if got == saved:
                if not bool(jax.device_get(_all_finite(state["params"]))):
                    raise ValueError(
                        f"checkpoint step {step} in {workdir}: non-finite parameters; expected "
                        f"finite ones (delete {pathlib.Path(workdir) / CHECKPOINTS / str(step)} to "
                        "use an earlier checkpoint, or train a new --workdir)"
                    )
                return step, state, meta, skipped
            reason = f"fingerprint {got} does not match the saved {saved} (a changed file)"
        log.warning("checkpoint step %d in %s skipped: %s", step, workdir, reason)
        skipped.append((step, reason))
    listed = "; ".join(f"step {s}: {r}" for s, r in skipped) or "none found"
    raise ValueError(
        f"no checkpoint in {pathlib.Path(workdir) / CHECKPOINTS} restores ({listed}); expected "
        "an intact checkpoint (or a new --workdir)"
    )


def move_skipped(mngr: ocp.CheckpointManager, workdir: pathlib.Path, skipped) -> None:
    """Moves checkpoints that did not restore to DIR/skipped_checkpoints/STEP (kept for a look,
    out of the way of the resumed run, which saves those steps again), then rereads the steps."""
    if not skipped:
        return
    if jax.process_index() == 0:
        for step, _ in skipped:
            target = workdir / SKIPPED / str(step)
            n = 1
            while target.exists():
                target, n = workdir / SKIPPED / f"{step}.{n}", n + 1
            target.parent.mkdir(exist_ok=True)
            (workdir / CHECKPOINTS / str(step)).rename(target)
            log.warning("moved the skipped checkpoint of step %d to %s", step, target)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("sigjax: skipped checkpoints moved")
    mngr.reload()


def config_json(config) -> dict:
    """The config as the plain dict saved in config.json and in each checkpoint's metadata."""
    return json.loads(config.to_json_best_effort())


def read_saved_config(path) -> dict:
    """A run's saved config.json, in today's spelling and with today's fields.

    Runs saved before 2026-12-01 spelled the automatic attention implementation "auto" (or "");
    it is None now, the one spelling the attention ops accept. A field the run predates is added
    with the value that keeps its behaviour (`added_defaults`).
    """
    saved = json.loads(pathlib.Path(path).read_text())
    model = saved.get("model", {})
    if model.get("implementation") in ("auto", ""):
        model["implementation"] = None
    for name, value in added_defaults().items():
        *sections, leaf = name.split(".")
        node = saved
        for s in sections:
            node = node.setdefault(s, {})
        node.setdefault(leaf, value)
    return saved


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_ABSENT = "<absent>"


def config_differences(saved: dict, new: dict) -> dict:
    """Fields, anywhere in the config, that differ between a saved and a new config and may not
    change on resume: dotted name -> (saved, new). Fields in `RESUME_SAFE` are left out; a field
    the saved run predates counts as its old-behaviour value (`added_defaults`)."""
    old = {**added_defaults(), **_flat(saved)}
    new = _flat(new)
    return {
        k: (old.get(k, _ABSENT), new.get(k, _ABSENT))
        for k in sorted(old.keys() | new.keys())
        if k not in RESUME_SAFE and old.get(k, _ABSENT) != new.get(k, _ABSENT)
    }


def has_checkpoints(workdir: pathlib.Path) -> bool:
    """Whether DIR/checkpoints holds a step folder (half-written ones from a kill do not count)."""
    folder = pathlib.Path(workdir) / CHECKPOINTS
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def check_resume(config, workdir: pathlib.Path) -> None:
    """Refuses to resume a run with another config; reads files only, writes nothing.

    On a workdir with checkpoints and a config.json, every field outside `RESUME_SAFE` must equal
    the saved value (fields the saved run predates compare with their old-behaviour value). The
    fields that may change: train.num_steps (the cosine decay then spans the new length from the
    resume step on), train.log_every, train.eval_every, train.checkpoint_every,
    train.keep_checkpoints, train.progress_bar, distributed, mesh.data, mesh.fsdp, data.backed.
    Everything else, in any section (data.n_bins, data.max_len, data.value_encoding, seed, the
    learning-rate schedule, ...) makes another run and is refused.

    Raises:
      ValueError: one line naming each differing field with its saved and new value.
    """
    config_path = pathlib.Path(workdir) / CONFIG_FILE
    if not (config_path.is_file() and has_checkpoints(workdir)):
        return
    saved = read_saved_config(config_path)
    diff = config_differences(saved, config_json(config))
    if diff:
        fields = "; ".join(f"{k}: saved {a!r}, got {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"cannot resume {workdir} with another config: {fields}; expected the saved values "
            f"(a resume may change only {', '.join(sorted(RESUME_SAFE))}), or a new --workdir"
        )
    before = saved.get("train", {}).get("num_steps")
    if before is not None and before != config.train.num_steps:
        log.info(
            "train.num_steps: %s -> %s; the learning rate decays over the new length from here",
            before,
            config.train.num_steps,
        )


def check_vocab(workdir: pathlib.Path, vocab: Vocab) -> None:
    """Refuses data whose vocabulary differs from the one a run was trained on.

    Raises:
      ValueError: another vocabulary than the saved one.
    """
    vocab_path = pathlib.Path(workdir) / VOCAB_FILE
    if vocab_path.exists():
        saved = Vocab.load(vocab_path)
        if saved != vocab:
            raise ValueError(
                f"vocabulary mismatch: {workdir} was trained on {saved.size} tokens, the data now "
                f"gives {vocab.size} (or other genes); expected the same genes (or a new --workdir)"
            )


def read_split(workdir) -> dict | None:
    """The split fingerprint a run saved (None for runs saved before it existed)."""
    path = pathlib.Path(workdir) / SPLIT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def split_mismatch(saved: dict | None, split: dict | None) -> str | None:
    """What differs between two split fingerprints (`sigjax.data.split_fingerprint`); None when
    they agree or either is missing."""
    if saved is None or split is None:
        return None
    why = []
    for part in ("train", "heldout"):
        n_saved, n = saved.get(f"{part}_cells"), split[f"{part}_cells"]
        if n_saved != n:
            why.append(f"{n_saved} {part} cells saved, {n} now")
        elif saved.get(f"{part}_ids_sha256") != split[f"{part}_ids_sha256"]:
            why.append(f"{part} cells with other ids or in another order")
        # Both parts are listed: a shifted split changes both.
    return "; ".join(why) or None


def check_split(workdir: pathlib.Path, split: dict | None) -> None:
    """Refuses to resume on other cells than the run split (the data file changed under the same
    config): the held-out cells would be trained on. Reads files only.

    Raises:
      ValueError: the saved split fingerprint differs from `split`.
    """
    why = split_mismatch(read_split(workdir), split)
    if why:
        raise ValueError(
            f"data: the cells differ from those {workdir} was trained on ({why}); expected the "
            "same data as the run started with (or a new --workdir)"
        )


def checked_split_rows(workdir, data_config, cells, what: str):
    """`sigjax.data.split_rows(data_config, cells)` of a saved run, checked against the split
    that run saved: the same rows only mean the same cells in the same file.

    Args:
      workdir: the run.
      data_config: its data config.
      cells: TokenizedCells, one per row of the data being scored.
      what: names the data in the error (e.g. "--heldout: the cells of --data").

    Raises:
      ValueError: other cells, or another order, than the run split (runs saved before
        split.json existed are not checked).
    """
    train, val = split_rows(data_config, cells)
    ids = cells.cell_ids
    now = None if ids is None else split_fingerprint(ids[train], ids[val])
    why = split_mismatch(read_split(workdir), now)
    if why:
        raise ValueError(
            f"{what} are not those {str(workdir)!r} split ({why}); expected the run's own data "
            "file, or `eval embed`'s output of it (same cells, same order)"
        )
    return train, val


def write_run_files(config, workdir: pathlib.Path, vocab: Vocab, split: dict | None = None):
    """Saves config.json, vocab.json and (if given) split.json (process 0), once the run is known
    to start or resume."""
    if jax.process_index() == 0:
        vocab.save(workdir / VOCAB_FILE)
        atomic_write(workdir / CONFIG_FILE, json.dumps(config_json(config), indent=2))
        if split is not None:
            atomic_write(workdir / SPLIT_FILE, json.dumps(split, indent=2))


def load_model(workdir, step: int | None = None):
    """The model of a run for inference, from its newest intact (or the given) checkpoint.

    A newer checkpoint that does not restore (see `restore_newest`) is skipped with a warning.

    Args:
      workdir: a training run directory.
      step: checkpoint step; None = the newest that restores.

    Returns:
      (CellEncoder with host parameters, config, vocab).

    Raises:
      FileNotFoundError: no config.json or no checkpoint in workdir, or no checkpoint `step`.
      ValueError: no checkpoint restores, or its parameters are not finite (one line, naming
        the workdir and step).
    """
    workdir = pathlib.Path(workdir)
    if not (workdir / CONFIG_FILE).exists():
        raise FileNotFoundError(
            f"--workdir: no {CONFIG_FILE} in {workdir}; expected a training run directory"
        )
    config = ml_collections.ConfigDict(read_saved_config(workdir / CONFIG_FILE))
    vocab = Vocab.load(workdir / VOCAB_FILE)
    mngr = ocp.CheckpointManager(
        (workdir / CHECKPOINTS).absolute(), options=ocp.CheckpointManagerOptions(read_only=True)
    )
    try:
        steps = mngr.all_steps()
        if (step is None and not steps) or (step is not None and step not in steps):
            raise FileNotFoundError(
                f"step: got {step}, expected one of the checkpoints {sorted(steps)} in "
                f"{workdir / CHECKPOINTS}"
            )
        mesh = single_device_mesh()
        with jax.set_mesh(mesh):
            setup, _ = make_setup(config, vocab.size, mesh)
            _, state, _, _ = restore_newest(mngr, setup, steps if step is None else [step], workdir)
            params = jax.device_get(state["params"])
    finally:
        mngr.close()
    return nnx.merge(setup.graphdef, params), config, vocab
