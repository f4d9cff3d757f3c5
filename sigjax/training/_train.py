"""The training loop: `train_and_evaluate(config, workdir)`, which trains or resumes a run.

The pieces live beside it: devices and shardings in `_mesh.py`, the model, optimizer and jitted
steps in `_steps.py` (the loss in `_objective.py`), the run directory and checkpoints in
`_checkpoint.py`, metrics.jsonl and TensorBoard in `_metrics.py`.
"""

import contextlib
import functools
import logging
import math
import os
import pathlib
import socket
import sys
import time

import jax
import ml_collections
import numpy as np
from flax import nnx

from sigjax.data import (
    CellLoader,
    check_data_config,
    check_file_fields,
    make_datasets,
    split_fingerprint,
)
from sigjax.model import EncoderConfig
from sigjax.training import _checkpoint as ckpt
from sigjax.training._mesh import (
    make_mesh,
    maybe_initialize_distributed,
    prefetch,
    process_rows,
    replicate,
)
from sigjax.training._metrics import MetricsWriter, frozen_groups, frozen_message, read_metrics
from sigjax.training._steps import build_model, evaluate_losses, make_setup, train_step

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Raised when a step produced a non-finite loss, gradient, update or parameter."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Trains (or resumes) the model described by `config` in `workdir`.

    Before anything is written, the config is checked (`check_config`), the workdir must be a
    writable directory (or creatable), and on resume the config must equal the saved one except
    for resume-safe fields (`_checkpoint.RESUME_SAFE`); a new workdir refused later (a mesh or data
    that does not fit) is removed again. A resume starts from the newest checkpoint
    that restores intact; newer ones that do not are logged and moved to DIR/skipped_checkpoints.
    A run already at train.num_steps logs "already at step N of N; nothing to do" and writes
    nothing. A workdir with metrics but no checkpoint starts at step 0 and keeps the old rows in a
    side file (see `MetricsWriter`).

    Args:
      config: a training config (see configs/default.py).
      workdir: run directory; a rerun with the same directory resumes from its latest complete
        checkpoint and continues the same trajectory.

    Returns:
      Final metrics: step, last train/loss, last val/loss, median perf/step_time (None when no
      step ran).

    Raises:
      ValueError: bad config, data or workdir; another vocabulary or config on resume; no
        checkpoint restores, or the newest intact one holds non-finite parameters.
      NonFiniteError: a non-finite step (the last good checkpoint is kept).
    """
    check_config(config)
    made = not pathlib.Path(workdir).exists()
    workdir = _checked_workdir(workdir)
    with _removed_if_refused(workdir, made):
        ckpt.check_resume(config, workdir)
        maybe_initialize_distributed(config)
        mesh = _checked_mesh(config)
        train_cells, val_cells, vocab = make_datasets(config.data)
        split = split_fingerprint(train_cells.cell_ids, val_cells.cell_ids)
        resuming = ckpt.has_checkpoints(workdir)
        if resuming:
            ckpt.check_vocab(workdir, vocab)
            ckpt.check_split(workdir, split)
        d = config.data
        # Before the checkpoint manager: its start-up cleanup runs in a thread, and closing it at
        # once for a bad batch size (e.g. a few cells) logs that thread's traceback after the error.
        loader = CellLoader(
            train_cells,
            batch_size=d.batch_size,
            seed=d.seed,
            max_len=d.max_len,
            bucket_by_length=d.bucket_by_length,
        )
    mngr = ckpt.checkpoint_manager(workdir, config.train)
    try:
        with jax.set_mesh(mesh):
            setup, state = make_setup(config, vocab.size, mesh)
            latest = None
            if mngr.all_steps():
                latest, state, meta, skipped = ckpt.restore_newest(
                    mngr, setup, mngr.all_steps(), workdir
                )
                ckpt.move_skipped(mngr, workdir, skipped)
                loader.set_state(meta["loader"])  # The data position is part of the checkpoint.
                if latest >= config.train.num_steps:
                    return _nothing_to_do(workdir, latest, config.train.num_steps)
                log.info("resumed from step %d", latest)
            ckpt.write_run_files(config, workdir, vocab, split)
            writer = MetricsWriter(workdir, latest or 0)
            try:
                batches = prefetch(loader, mesh)
                return _loop(config, mngr, setup, state, batches, val_cells, writer)
            finally:
                writer.close()
    finally:
        mngr.wait_until_finished()
        mngr.close()


def check_config(config) -> None:
    """The checks of a training config that need no data and no devices, in one place.

    Raises:
      ValueError: naming the first bad field, its value and what was expected.
    """
    tc, dc = config.train, config.data

    def number(section, name, value, ok: bool, expected: str):
        if not ok:
            raise ValueError(f"{section}.{name}: got {value!r}, expected {expected}")

    for name in ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
        number("train", name, tc[name], int(tc[name]) >= 1, "an integer >= 1")
    number("train", "eval_every", tc.eval_every, int(tc.eval_every) >= 0, "an integer >= 0")
    number("train", "warmup_steps", tc.warmup_steps, int(tc.warmup_steps) >= 0, "an integer >= 0")
    for name in ("learning_rate", "weight_decay", "grad_clip_norm"):
        v = float(tc[name])
        number("train", name, tc[name], math.isfinite(v) and v >= 0, "a finite number >= 0")
    # A fraction of the peak: above 1 the "decay" would climb past train.learning_rate.
    f = float(tc.final_lr_fraction)
    number("train", "final_lr_fraction", tc.final_lr_fraction, 0 <= f <= 1, "a value in [0, 1]")
    for name in ("b1", "b2"):
        number("train", name, tc[name], 0 <= float(tc[name]) < 1, "a value in [0, 1)")
    eps = float(tc.eps)
    number("train", "eps", tc.eps, math.isfinite(eps) and eps > 0, "a finite number > 0")
    p = float(config.model.mask_prob)
    number("model", "mask_prob", config.model.mask_prob, 0 < p < 1, "a value in (0, 1)")
    for name in ("batch_size", "eval_batch_size"):
        number("data", name, dc[name], int(dc[name]) >= 1, "an integer >= 1")
    check_data_config(dc)  # Choices, max_len, val_fraction, seed, ...
    # Here, not in make_datasets: eval reads saved runs, which may hold such an ignored value.
    check_file_fields(dc)
    EncoderConfig.from_config(config, vocab_size=16)  # Model sizes and choices (pooling, ...).


def _checked_workdir(workdir) -> pathlib.Path:
    """`workdir` as a Path, created if new, after checking that the run can write there.

    Raises:
      ValueError: it is a file, or it cannot be created or written.
    """
    workdir = pathlib.Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"--workdir: {workdir} is a file; expected a directory (new or a run's)")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        # Per process and host (several may share the directory); no jax call before
        # maybe_initialize_distributed.
        probe = workdir / f".write-test-{socket.gethostname()}-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(
            f"--workdir: cannot write in {workdir} ({e.strerror or e}); expected a writable "
            "directory"
        ) from e
    return workdir


@contextlib.contextmanager
def _removed_if_refused(workdir: pathlib.Path, made: bool):
    """Removes the workdir `_checked_workdir` just made when the run is refused inside the block
    (a mesh that does not fit the devices, data that does not fit the config): a refused run
    leaves no trace. Only while it is still empty: another process of the run may write there.
    """
    try:
        yield
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                workdir.rmdir()
        raise


def _nothing_to_do(workdir, step: int, num_steps: int) -> dict:
    """A finished run rerun: says so, writes nothing, returns the last logged metrics."""
    if step == num_steps:
        log.info("already at step %d of %d; nothing to do", step, num_steps)
    else:
        log.info("already at step %d, past train.num_steps=%d; nothing to do", step, num_steps)
    try:
        logged = [r for r in read_metrics(workdir) if r["step"] <= step]
    except (FileNotFoundError, ValueError):
        logged = []
    last = logged[-1] if logged else {}
    evals = [r["val/loss"] for r in logged if "val/loss" in r]
    return {
        "step": step,
        "train/loss": last.get("train/loss"),
        "val/loss": evals[-1] if evals else None,
        "perf/step_time": None,
    }


def _loop(config, mngr, setup, state, batches, val_cells, writer) -> dict:
    """Steps until train.num_steps; metrics leave the devices only at log/eval/save steps."""
    tc = config.train
    # The learning rate is an argument, not a constant: a grid's runs that differ only in it (or
    # in their seed) compile one program per batch shape and share it through the cache.
    step_fn = jax.jit(
        functools.partial(train_step, setup, config),
        donate_argnums=0,
        out_shardings=(setup.shardings, None),
    )
    with np.errstate(over="ignore"):  # An LR past float32's range is inf, as the constant was.
        lr = np.float32(tc.learning_rate)
    start = int(jax.device_get(state["step"]))
    pending, tokens, t_last, step_times, last = [], 0, time.perf_counter(), [], {}
    shapes, compile_s = set(), 0.0  # Batch shapes seen; seconds of first calls since last row.
    progress = _progress_bar(tc, start)
    for step in range(start, tc.num_steps):
        batch, n_tokens, loader_state = next(batches)
        tokens += n_tokens
        shape = tuple(batch["genes"].shape)
        if shape in shapes:
            state, metrics = step_fn(state, batch, lr)
        else:  # A new shape: jit compiles here (or loads the program from the cache).
            shapes.add(shape)
            t0 = time.perf_counter()
            state, metrics = step_fn(state, batch, lr)
            jax.block_until_ready(metrics["train/loss"])
            first = time.perf_counter() - t0
            compile_s += first
            log.info("step %d: first batch of shape %s took %.1f s", step + 1, shape, first)
        done = step + 1
        pending.append((done, metrics))
        at_end = done == tc.num_steps
        at_log = done % tc.log_every == 0 or at_end
        at_save = done % tc.checkpoint_every == 0 or at_end
        # No held-out cell (val_fraction 0, or a few cells): no val/loss, not a made-up 0.0.
        at_eval = bool(tc.eval_every and len(val_cells)) and (done % tc.eval_every == 0 or at_end)
        if not (at_log or at_save or at_eval):
            continue
        fetched = jax.device_get(pending)  # The only device-to-host copy of metrics.
        now = time.perf_counter()
        _stop_if_non_finite(fetched, writer, mngr)
        _warn_if_frozen(fetched, done)
        row = {k: v for k, v in fetched[-1][1].items() if k != "ok"}
        row["perf/step_time"] = (now - t_last) / len(pending)
        row["perf/tokens_per_sec"] = tokens / (now - t_last)
        if compile_s:
            row["perf/compile_s"] = compile_s  # Inside this row's step time.
        if at_eval:
            model = nnx.merge(setup.graphdef, replicate(state["params"]))
            row.update(evaluate_losses(model, val_cells, config))
        writer.write(done, row)
        step_times.append(row["perf/step_time"])
        last = row
        if at_save:
            ckpt.save(mngr, done, state, loader_state, config)
        if progress is not None:
            progress.update(done - progress.n)
            progress.set_postfix(
                loss=f"{row['train/loss']:.4f}", tok_s=f"{row['perf/tokens_per_sec']:.0f}"
            )
        pending, tokens, t_last, compile_s = [], 0, time.perf_counter(), 0.0
    if progress is not None:
        progress.close()
    return {
        "step": tc.num_steps,
        "train/loss": last.get("train/loss"),
        "val/loss": last.get("val/loss"),
        "perf/step_time": float(np.median(step_times)) if step_times else None,
    }


def _stop_if_non_finite(fetched, writer, mngr) -> None:
    """Raises NonFiniteError at the first step that reported ok=False (its row is logged first;
    the step's update was not applied, and no later checkpoint is written)."""
    for bad_step, bad in fetched:
        if not bool(bad["ok"]):
            writer.write(bad_step, {k: v for k, v in bad.items() if k != "ok"})
            mngr.wait_until_finished()
            good = mngr.latest_step()
            raise NonFiniteError(
                f"non-finite loss, gradient, update or parameters at step {bad_step} "
                f"(loss={float(bad['train/loss'])}, grad_norm={float(bad['train/grad_norm'])}, "
                f"update_norm={float(bad['train/update_norm'])}); training stopped, "
                + (f"last good checkpoint: step {good}" if good else "no checkpoint saved yet")
            )


def _warn_if_frozen(fetched, step: int) -> None:
    """Logs a warning naming the frozen sub-blocks (`frozen_groups`) of the steps fetched at a
    log step: once per logging interval, from the median of its steps' update ratios."""
    frozen = frozen_groups([metrics for _, metrics in fetched])
    if frozen:
        log.warning("step %d: %s", step, frozen_message(frozen))


def _checked_mesh(config) -> jax.sharding.Mesh:
    """The run's mesh, after checking what can be checked before any data is loaded."""
    # A bad model config fails here (shapes only, nothing allocated).
    nnx.eval_shape(lambda: build_model(config, 16))
    backend = jax.default_backend()
    if config.model.implementation == "cudnn" and backend != "gpu":
        # Else jax's RuntimeError("cuDNN is not detected.") at the first step, files written.
        raise ValueError(
            f"model.implementation: got 'cudnn' on the {backend} backend; expected a GPU (cuDNN "
            "runs nowhere else), or 'xla' or None (automatic)"
        )
    mesh = make_mesh(config.mesh)
    if config.data.batch_size % mesh.size:
        raise ValueError(
            f"data.batch_size: got {config.data.batch_size}, expected a multiple of the "
            f"{mesh.size} devices of the mesh"
        )
    if jax.process_count() > 1:
        log.info(
            "process %d of %d: %d devices, feeds rows %s of each global batch of %d",
            jax.process_index(),
            jax.process_count(),
            jax.local_device_count(),
            process_rows(mesh, config.data.batch_size).tolist(),
            config.data.batch_size,
        )
    return mesh


def _progress_bar(tc, start: int):
    """A tqdm bar on stderr (process 0; disabled by train.progress_bar=False), else None."""
    if jax.process_index() != 0:
        return None
    from tqdm import tqdm

    return tqdm(
        total=tc.num_steps,
        initial=start,
        desc="train",
        file=sys.stderr,
        disable=not tc.progress_bar,
        dynamic_ncols=True,
    )
