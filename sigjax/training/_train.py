"""The training loop: sharded Optax steps, gradient-norm logging, Orbax checkpoints, resume."""

import collections
import dataclasses
import functools
import json
import logging
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from sigjax.data import CellLoader, Vocab, make_datasets
from sigjax.model import CellEncoder
from sigjax.training._objective import group_norms, masked_loss, objective_loss

log = logging.getLogger(__name__)
BATCH_AXES = ("data", "fsdp")
PREFETCH = 2  # Batches put on the devices ahead of the step that uses them.


class NonFiniteError(RuntimeError):
    """Raised when a step produced a non-finite loss or gradient."""


# --------------------------------------------------------------------------- mesh and sharding
def make_mesh(mesh_cfg) -> jax.sharding.Mesh:
    """A (data, fsdp) mesh with explicit axes.

    Args:
      mesh_cfg: `config.mesh`: data (-1 = every device not used by fsdp) and fsdp sizes.

    Returns:
      The mesh over the first data * fsdp devices (all of them with data = -1; a multi-process
      run must use all devices).

    Raises:
      ValueError: sizes that do not fit the devices.
    """
    n = jax.device_count()
    fsdp, data = int(mesh_cfg.fsdp), int(mesh_cfg.data)
    if fsdp < 1 or n % fsdp:
        raise ValueError(f"mesh.fsdp: got {mesh_cfg.fsdp}, expected a divisor of the {n} devices")
    if data == -1:
        data = n // fsdp
    if data < 1 or data * fsdp > n or (jax.process_count() > 1 and data * fsdp != n):
        raise ValueError(
            f"mesh: got data={mesh_cfg.data}, fsdp={mesh_cfg.fsdp} for {n} devices; expected "
            "data * fsdp <= the number of devices (== with several processes; data=-1 fills them)"
        )
    return jax.make_mesh(
        (data, fsdp),
        BATCH_AXES,
        axis_types=(AxisType.Explicit,) * 2,
        devices=jax.devices()[: data * fsdp],
    )


def fsdp_spec(shape, fsdp: int) -> P:
    """Sharding of one parameter: its largest axis divisible by the fsdp size, else replicated.

    Args:
      shape: the parameter's shape.
      fsdp: size of the "fsdp" mesh axis.

    Returns:
      A PartitionSpec naming "fsdp" on at most one axis.
    """
    if fsdp == 1 or not shape:
        return P()
    for axis in np.argsort(shape, kind="stable")[::-1]:
        if shape[axis] % fsdp == 0 and shape[axis] >= fsdp:
            spec = [None] * len(shape)
            spec[axis] = "fsdp"
            return P(*spec)
    return P()


def state_shardings(abstract_state, mesh):
    """NamedShardings of a train state: FSDP over "fsdp" (replicated over "data")."""
    fsdp = mesh.shape["fsdp"]
    shardings = jax.tree.map(
        lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp)), abstract_state
    )
    if "rng" in shardings:  # Key data must stay whole (a key's trailing dim is not shardable).
        shardings["rng"] = NamedSharding(mesh, P())
    return shardings


@functools.cache  # Asked once per batch; constant for a (mesh, batch size).
def process_rows(mesh, batch_size: int) -> np.ndarray:
    """The rows of a global batch that this process's devices hold, in ascending order.

    Read from the batch sharding rather than assumed to be the process index's contiguous block:
    a mesh need not list its devices process by process.

    Args:
      mesh: the training mesh.
      batch_size: rows of the global batch.

    Returns:
      int64 [rows of this process]; all of them in a single-process run.
    """
    sharding = NamedSharding(mesh, P(BATCH_AXES))
    index = sharding.addressable_devices_indices_map((batch_size,))
    rows = {i for (s,) in index.values() for i in range(*s.indices(batch_size))}
    out = np.array(sorted(rows), np.int64)
    out.setflags(write=False)  # Shared by every call.
    return out


def global_batch(batch: dict, mesh) -> dict:
    """Host numpy batch (the global batch, identical on every process) -> arrays sharded over
    (data, fsdp) on the batch axis. Each process contributes the rows of its devices."""
    sharding = NamedSharding(mesh, P(BATCH_AXES))
    n = len(next(iter(batch.values())))
    # make_array_from_process_local_data places the local rows, in order, on this process's
    # slices of the global batch (sorted by position).
    rows = process_rows(mesh, n) if jax.process_count() > 1 else slice(None)
    return {
        k: jax.make_array_from_process_local_data(sharding, v[rows], v.shape)
        for k, v in batch.items()
    }


def _prefetch(loader, mesh, size: int = PREFETCH):
    """Yields (device batch, tokens, loader state after it), `size` batches ahead.

    device_put is asynchronous, so the copy of the next batches overlaps the running step. The
    loader state travels with each batch: a checkpoint records the position of the last batch a
    step consumed, not of the prefetched ones.
    """
    queue = collections.deque()
    while True:
        while len(queue) < size:
            batch = next(loader)
            queue.append(
                (global_batch(batch, mesh), int(batch["lengths"].sum()), loader.get_state())
            )
        yield queue.popleft()


# --------------------------------------------------------------------------- model and optimizer
def build_model(config, vocab_size: int) -> CellEncoder:
    """The CellEncoder of `config` with parameters from `config.seed`."""
    return CellEncoder(config.model, vocab_size, config.data.n_bins, rngs=nnx.Rngs(config.seed))


def make_optimizer(tc):
    """AdamW with linear warmup and cosine decay; clipping by global norm when grad_clip_norm > 0.

    Args:
      tc: `config.train`.

    Returns:
      (optax transformation, learning-rate schedule).
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=tc.learning_rate,
        warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.num_steps, tc.warmup_steps + 1),
        end_value=tc.learning_rate * tc.final_lr_fraction,
    )
    tx = optax.adamw(schedule, b1=tc.b1, b2=tc.b2, weight_decay=tc.weight_decay)
    if tc.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(tc.grad_clip_norm), tx)
    return tx, schedule


@dataclasses.dataclass
class Setup:
    """What the steps need besides the state: the model's graph, optimizer, shardings."""

    graphdef: nnx.GraphDef
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    shardings: dict
    abstract: dict


def make_setup(config, vocab_size: int, mesh) -> tuple[Setup, dict]:
    """Initial train state {params, opt_state, step, rng} sharded on the mesh, and its layout."""
    model = build_model(config, vocab_size)
    graphdef, params = nnx.split(model)
    tx, schedule = make_optimizer(config.train)

    def init(params):
        return {
            "params": params,
            "opt_state": tx.init(params),
            "step": jnp.zeros((), jnp.int32),
            # Raw key data (uint32) so that Orbax stores it like any array.
            "rng": jax.random.key_data(jax.random.key(config.seed)),
        }

    abstract = jax.eval_shape(init, params)
    shardings = state_shardings(abstract, mesh)
    state = jax.jit(init, out_shardings=shardings)(params)
    return Setup(graphdef, tx, schedule, shardings, abstract), state


def _replicate(tree):
    return jax.tree.map(lambda x: jax.sharding.reshard(x, P()), tree)


def train_step(setup: Setup, config, state, batch):
    """One optimizer step and its metrics (norms before clipping).

    A step whose loss or gradient is non-finite leaves params and optimizer state unchanged and
    reports ok=False; the loop stops on it.
    """
    key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
    mask_key, dropout_key = jax.random.split(key)

    def loss_fn(params):
        # FSDP: parameters are sharded at rest and gathered for use; their gradients come back
        # sharded like them (the transpose of the gather).
        model = nnx.merge(setup.graphdef, _replicate(params))
        return objective_loss(
            model, batch, mask_key, config.model, dropout_key if config.model.dropout else None
        )

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = setup.tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    grad_norm = optax.global_norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new = {**state, "params": params, "opt_state": opt_state}
    new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
    new["step"] = state["step"] + 1
    metrics = {
        "train/loss": loss,
        "train/masked_loss": aux["masked"],
        "train/expression_loss": aux["expression"],
        "train/grad_norm": grad_norm,
        "train/param_norm": optax.global_norm(state["params"]),
        "train/update_norm": optax.global_norm(updates),
        "train/lr": setup.schedule(state["step"]),
        "ok": ok,
        **group_norms(grads, config.model.num_layers),
    }
    return new, metrics


def _eval_step(graphdef, mask_prob, params, batch, key):
    model = nnx.merge(graphdef, params)
    loss, count = masked_loss(model, batch, key, mask_prob)
    return loss * count, count


@functools.lru_cache(maxsize=8)
def _jitted_eval_step(graphdef, mask_prob: float):
    return jax.jit(functools.partial(_eval_step, graphdef, mask_prob))


def evaluate_loss(model: CellEncoder, cells, config) -> float:
    """Validation masked-expression loss: mean over the masked tokens of all cells.

    The masks are deterministic (from `config.seed` and the batch index), so two models are
    scored on the same targets. Runs without dropout.

    Args:
      model: a CellEncoder (parameters on one device, or replicated on a mesh).
      cells: TokenizedCells.
      config: the run's config (data.eval_batch_size, data.max_len, model.mask_prob, seed).

    Returns:
      The loss (float); 0.0 when no token was masked.
    """
    graphdef, params = nnx.split(model)
    step = _jitted_eval_step(graphdef, float(config.model.mask_prob))
    leaf = jax.tree.leaves(params)[0]
    sharding = getattr(leaf, "sharding", None)
    # Batches go where the parameters are (replicated when those are on a mesh).
    put = (
        functools.partial(jax.device_put, device=NamedSharding(sharding.mesh, P()))
        if isinstance(sharding, NamedSharding)
        else jnp.asarray
    )
    loader = CellLoader(
        cells,
        batch_size=config.data.eval_batch_size,
        seed=config.data.seed,
        max_len=config.data.max_len,
        shuffle=False,
        drop_remainder=False,
    )
    total, count = 0.0, 0.0
    base = jax.random.key(config.seed + 1)
    for i, batch in enumerate(loader.iter_epoch()):
        s, c = step(params, {k: put(v) for k, v in batch.items()}, jax.random.fold_in(base, i))
        total, count = total + float(s), count + float(c)
    return total / max(count, 1.0)


# --------------------------------------------------------------------------- checkpoints
def checkpoint_manager(workdir: pathlib.Path, tc) -> ocp.CheckpointManager:
    """Async Orbax manager keeping the latest `tc.keep_checkpoints`; half-written ones from a
    killed run are removed at start (cleanup_tmp_directories) and never restored."""
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(tc.keep_checkpoints),
        enable_async_checkpointing=True,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def restore(mngr, step, setup: Setup):
    """The train state of `step`, restored straight into the target shardings, and its metadata."""
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


def _config_json(config) -> dict:
    return json.loads(config.to_json_best_effort())


# config.model fields added after the first release, with the value that keeps the old model.
_MODEL_FIELDS_ADDED = {
    "attention_output_norm": False,
    "masked_weight": 1.0,
    "expression_weight": 0.0,
    "expression_center": False,
}


def _prepare_workdir(config, workdir: pathlib.Path, vocab: Vocab, resuming: bool):
    """Saves config.json and vocab.json; on resume, refuses a different vocabulary or model
    before anything is written."""
    vocab_path, config_path = workdir / "vocab.json", workdir / "config.json"
    if resuming and vocab_path.exists():
        saved = Vocab.load(vocab_path)
        if saved != vocab:
            raise ValueError(
                f"vocabulary mismatch: {workdir} was trained on {saved.size} tokens, the data now "
                f"gives {vocab.size} (or other genes); expected the same genes (or a new --workdir)"
            )
    if resuming and config_path.exists():
        saved = json.loads(config_path.read_text())
        # Runs saved before a model field existed had that field's old behaviour (its default).
        saved_model = {**_MODEL_FIELDS_ADDED, **saved.get("model", {})}
        if saved_model != _config_json(config)["model"]:
            raise ValueError(
                f"config.model: got {_config_json(config)['model']} but the checkpoint in "
                f"{workdir} has {saved.get('model')}; expected the same model (or a new --workdir)"
            )
    if jax.process_index() == 0:
        # Write-then-rename: a run killed here leaves the old file or the new one, never half.
        vocab.save(vocab_path.with_suffix(".json.tmp"))
        os.replace(vocab_path.with_suffix(".json.tmp"), vocab_path)
        _atomic_write(config_path, json.dumps(_config_json(config), indent=2))


def _atomic_write(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- logging
class _Logger:
    """metrics.jsonl and TensorBoard events (process 0 only).

    At start, metrics.jsonl keeps only complete rows up to the step training resumes from: a
    killed run may have left a half-written line or rows of steps that will be redone.
    """

    def __init__(self, workdir: pathlib.Path, start_step: int):
        self.main = jax.process_index() == 0
        if not self.main:
            return
        from tensorboardX import SummaryWriter

        path = workdir / "metrics.jsonl"
        if path.exists():
            kept = []
            for line in path.read_text().splitlines(keepends=True):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if line.endswith("\n") and row.get("step", start_step + 1) <= start_step:
                    kept.append(line)
            _atomic_write(path, "".join(kept))
        self.file = open(path, "a")  # noqa: SIM115 - closed in close().
        self.tb = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, metrics: dict):
        if not self.main:
            return
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        for k, v in row.items():
            if k != "step" and np.isfinite(v):
                self.tb.add_scalar(k, v, step)

    def close(self):
        if self.main:
            self.file.close()
            self.tb.close()


def _maybe_initialize_distributed(config) -> None:
    """jax.distributed.initialize() when asked by config or by the launcher's environment.

    JAX reads JAX_COORDINATOR_ADDRESS itself and detects SLURM/MPI/Kubernetes launches; for a
    plain launch, JAX_NUM_PROCESSES and JAX_PROCESS_ID give the process count and this process.
    """
    env = os.environ
    if not (
        config.get("distributed", False)
        or env.get("JAX_COORDINATOR_ADDRESS")
        or env.get("JAX_NUM_PROCESSES")
    ):
        return
    kwargs = {}
    if env.get("JAX_NUM_PROCESSES"):
        kwargs["num_processes"] = int(env["JAX_NUM_PROCESSES"])
    if env.get("JAX_PROCESS_ID"):
        kwargs["process_id"] = int(env["JAX_PROCESS_ID"])
    jax.distributed.initialize(**kwargs)


# --------------------------------------------------------------------------- the loop
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
    _maybe_initialize_distributed(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tc = config.train
    for name in ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
        if int(tc[name]) < 1:
            raise ValueError(f"train.{name}: got {tc[name]}, expected an integer >= 1")
    # Fail on a bad model config before loading data (shapes only, nothing allocated).
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
    train_cells, val_cells, vocab = make_datasets(config.data)
    mngr = checkpoint_manager(workdir, tc)
    try:
        latest = mngr.latest_step()
        _prepare_workdir(config, workdir, vocab, latest is not None)
        loader = CellLoader(
            train_cells,
            batch_size=config.data.batch_size,
            seed=config.data.seed,
            max_len=config.data.max_len,
            bucket_by_length=config.data.bucket_by_length,
        )
        with jax.set_mesh(mesh):
            setup, state = make_setup(config, vocab.size, mesh)
            if latest is not None:
                state, meta = restore(mngr, latest, setup)
                loader.set_state(meta["loader"])
                log.info("resumed from step %d", latest)
            logger = _Logger(workdir, latest or 0)
            try:
                return _loop(config, mngr, setup, state, loader, val_cells, logger, mesh)
            finally:
                logger.close()
    finally:
        mngr.wait_until_finished()
        mngr.close()


def _loop(config, mngr, setup, state, loader, val_cells, logger, mesh) -> dict:
    tc = config.train
    step_fn = jax.jit(
        functools.partial(train_step, setup, config),
        donate_argnums=0,
        out_shardings=(setup.shardings, None),
    )
    start = int(jax.device_get(state["step"]))
    pending, tokens, t_last, step_times, last = [], 0, time.perf_counter(), [], {}
    progress = None
    if jax.process_index() == 0:
        from tqdm import tqdm

        progress = tqdm(
            total=tc.num_steps,
            initial=start,
            desc="train",
            file=sys.stderr,
            disable=not tc.progress_bar,
            dynamic_ncols=True,
        )
    batches = _prefetch(loader, mesh)
    for step in range(start, tc.num_steps):
        batch, n_tokens, loader_state = next(batches)
        tokens += n_tokens
        state, metrics = step_fn(state, batch)
        pending.append((step, metrics))
        done = step + 1
        at_log = done % tc.log_every == 0 or done == tc.num_steps
        at_save = done % tc.checkpoint_every == 0 or done == tc.num_steps
        at_eval = bool(tc.eval_every) and (done % tc.eval_every == 0 or done == tc.num_steps)
        if not (at_log or at_save or at_eval):
            continue
        fetched = jax.device_get(pending)  # The only device-to-host copy of metrics.
        now = time.perf_counter()
        step_time = (now - t_last) / len(pending)
        for bad_step, bad in fetched:
            if not bool(bad["ok"]):
                logger.write(bad_step + 1, {k: v for k, v in bad.items() if k != "ok"})
                mngr.wait_until_finished()
                raise NonFiniteError(
                    f"non-finite loss or gradient at step {bad_step + 1} "
                    f"(loss={float(bad['train/loss'])}, grad_norm={float(bad['train/grad_norm'])})"
                    f"; training stopped, last good checkpoint: step {mngr.latest_step()}"
                )
        row = {k: v for k, v in fetched[-1][1].items() if k != "ok"}
        row.update({"perf/step_time": step_time, "perf/tokens_per_sec": tokens / (now - t_last)})
        if at_eval:
            model = nnx.merge(setup.graphdef, _replicate(state["params"]))
            row["val/loss"] = evaluate_loss(model, val_cells, config)
        logger.write(done, row)
        step_times.append(step_time)
        last = row
        if at_save:
            meta = {"step": done, "loader": loader_state, "config": _config_json(config)}
            mngr.save(
                done,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
            )
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


def load_model(workdir, step: int | None = None):
    """The model of a run for inference, from the latest (or given) checkpoint.

    Args:
      workdir: a training run directory.
      step: checkpoint step; None = the latest.

    Returns:
      (CellEncoder with host parameters, config, vocab).

    Raises:
      FileNotFoundError: no config.json or no checkpoint in workdir.
    """
    workdir = pathlib.Path(workdir)
    if not (workdir / "config.json").exists():
        raise FileNotFoundError(
            f"--workdir: no config.json in {workdir}; expected a training run directory"
        )
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    vocab = Vocab.load(workdir / "vocab.json")
    mngr = ocp.CheckpointManager(
        (workdir / "checkpoints").absolute(), options=ocp.CheckpointManagerOptions(read_only=True)
    )
    try:
        steps = mngr.all_steps()
        if step is None:
            step = mngr.latest_step()
        if step is None or step not in steps:
            raise FileNotFoundError(
                f"step: got {step}, expected one of the checkpoints {sorted(steps)} in "
                f"{workdir / 'checkpoints'}"
            )
        mesh = jax.make_mesh(
            (1, 1), BATCH_AXES, axis_types=(AxisType.Explicit,) * 2, devices=jax.devices()[:1]
        )
        with jax.set_mesh(mesh):
            setup, _ = make_setup(config, vocab.size, mesh)
            state, _ = restore(mngr, step, setup)
            params = jax.device_get(state["params"])
    finally:
        mngr.close()
    return nnx.merge(setup.graphdef, params), config, vocab
