"""The training loop: `train_and_evaluate(config, workdir)`, which trains or resumes a run.

The pieces live beside it: devices and shardings in `_mesh.py`, the model, optimizer and jitted
steps in `_steps.py` (the loss in `_objective.py`), the run directory and checkpoints in
`_checkpoint.py`, metrics.jsonl and TensorBoard in `_metrics.py`.
"""

import functools
import logging
import pathlib
import sys
import time

import jax
import ml_collections
import numpy as np
from flax import nnx

from sigjax.data import CellLoader, make_datasets
from sigjax.training import _checkpoint as ckpt
from sigjax.training._mesh import (
    make_mesh,
    maybe_initialize_distributed,
    prefetch,
    process_rows,
    replicate,
)
from sigjax.training._metrics import MetricsWriter
from sigjax.training._steps import build_model, evaluate_loss, make_setup, train_step

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Raised when a step produced a non-finite loss or gradient."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Trains (or resumes) the model described by `config` in `workdir`.

    Args:
      config: a training config (see configs/default.py).
      workdir: run directory; a rerun with the same directory resumes from its latest complete
        checkpoint and continues the same trajectory.

    Returns:
      Final metrics: step, last train/loss, last val/loss, median perf/step_time.

    Raises:
      ValueError: bad config or data, vocabulary or model mismatch on resume.
      NonFiniteError: a non-finite loss or gradient (the last good checkpoint is kept).
    """
    maybe_initialize_distributed(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = _checked_mesh(config)
    train_cells, val_cells, vocab = make_datasets(config.data)
    mngr = ckpt.checkpoint_manager(workdir, config.train)
    try:
        latest = mngr.latest_step()
        ckpt.prepare_workdir(config, workdir, vocab, resuming=latest is not None)
        d = config.data
        loader = CellLoader(
            train_cells,
            batch_size=d.batch_size,
            seed=d.seed,
            max_len=d.max_len,
            bucket_by_length=d.bucket_by_length,
        )
        with jax.set_mesh(mesh):
            setup, state = make_setup(config, vocab.size, mesh)
            if latest is not None:
                state, meta = ckpt.restore(mngr, latest, setup)
                loader.set_state(meta["loader"])  # The data position is part of the checkpoint.
                log.info("resumed from step %d", latest)
            writer = MetricsWriter(workdir, latest or 0)
            try:
                batches = prefetch(loader, mesh)
                return _loop(config, mngr, setup, state, batches, val_cells, writer)
            finally:
                writer.close()
    finally:
        mngr.wait_until_finished()
        mngr.close()


def _loop(config, mngr, setup, state, batches, val_cells, writer) -> dict:
    """Steps until train.num_steps; metrics leave the devices only at log/eval/save steps."""
    tc = config.train
    step_fn = jax.jit(
        functools.partial(train_step, setup, config),
        donate_argnums=0,
        out_shardings=(setup.shardings, None),
    )
    start = int(jax.device_get(state["step"]))
    pending, tokens, t_last, step_times, last = [], 0, time.perf_counter(), [], {}
    progress = _progress_bar(tc, start)
    for step in range(start, tc.num_steps):
        batch, n_tokens, loader_state = next(batches)
        tokens += n_tokens
        state, metrics = step_fn(state, batch)
        done = step + 1
        pending.append((done, metrics))
        at_end = done == tc.num_steps
        at_log = done % tc.log_every == 0 or at_end
        at_save = done % tc.checkpoint_every == 0 or at_end
        at_eval = bool(tc.eval_every) and (done % tc.eval_every == 0 or at_end)
        if not (at_log or at_save or at_eval):
            continue
        fetched = jax.device_get(pending)  # The only device-to-host copy of metrics.
        now = time.perf_counter()
        _stop_if_non_finite(fetched, writer, mngr)
        row = {k: v for k, v in fetched[-1][1].items() if k != "ok"}
        row["perf/step_time"] = (now - t_last) / len(pending)
        row["perf/tokens_per_sec"] = tokens / (now - t_last)
        if at_eval:
            model = nnx.merge(setup.graphdef, replicate(state["params"]))
            row["val/loss"] = evaluate_loss(model, val_cells, config)
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
        pending, tokens, t_last = [], 0, time.perf_counter()
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
            raise NonFiniteError(
                f"non-finite loss or gradient at step {bad_step} "
                f"(loss={float(bad['train/loss'])}, grad_norm={float(bad['train/grad_norm'])})"
                f"; training stopped, last good checkpoint: step {mngr.latest_step()}"
            )


def _checked_mesh(config) -> jax.sharding.Mesh:
    """The run's mesh, after checking what can be checked before any data is loaded."""
    tc = config.train
    for name in ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
        if int(tc[name]) < 1:
            raise ValueError(f"train.{name}: got {tc[name]}, expected an integer >= 1")
    # A bad model config fails here (shapes only, nothing allocated).
    nnx.eval_shape(lambda: build_model(config, 16))
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
