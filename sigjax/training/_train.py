"""The training loop: sharded Optax steps, gradient-norm logging, Orbax checkpoints, resume."""

import dataclasses
import functools
import json
import logging
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
from sigjax.training._objective import group_norms, masked_loss

log = logging.getLogger(__name__)
BATCH_AXES = ("data", "fsdp")


class NonFiniteError(RuntimeError):
    """Raised when a step produced a non-finite loss or gradient."""


# --------------------------------------------------------------------------- mesh and sharding
def make_mesh(mesh_cfg) -> jax.sharding.Mesh:
    """A (data, fsdp) mesh with explicit axes; data = -1 takes every device not used by fsdp."""
    n = jax.device_count()
    fsdp = int(mesh_cfg.fsdp)
    data = int(mesh_cfg.data) if int(mesh_cfg.data) > 0 else n // max(fsdp, 1)
    if fsdp < 1 or data * fsdp != n:
        raise ValueError(
            f"mesh: got data={mesh_cfg.data}, fsdp={mesh_cfg.fsdp} for {n} devices; expected "
            "data * fsdp == number of devices (data=-1 fills the rest)"
        )
    return jax.make_mesh((data, fsdp), BATCH_AXES, axis_types=(AxisType.Explicit,) * 2)


def fsdp_spec(shape, fsdp: int) -> P:
    """Shards a parameter's largest axis divisible by the fsdp size; small or odd ones replicate."""
    if fsdp == 1 or not shape:
        return P()
    for axis in np.argsort(shape)[::-1]:
        if shape[axis] % fsdp == 0 and shape[axis] >= fsdp:
            spec = [None] * len(shape)
            spec[axis] = "fsdp"
            return P(*spec)
    return P()


def state_shardings(abstract_state, mesh):
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp)), abstract_state)


def global_batch(batch: dict, mesh) -> dict:
    """Host numpy batch (the global batch on every process) -> arrays sharded over (data, fsdp)."""
    sharding = NamedSharding(mesh, P(BATCH_AXES))
    procs, pid = jax.process_count(), jax.process_index()
    out = {}
    for k, v in batch.items():
        local = np.array_split(v, procs)[pid] if procs > 1 else v
        out[k] = jax.make_array_from_process_local_data(sharding, local, v.shape)
    return out


# --------------------------------------------------------------------------- model and optimizer
def build_model(config, vocab_size: int) -> CellEncoder:
    return CellEncoder(config.model, vocab_size, config.data.n_bins, rngs=nnx.Rngs(config.seed))


def make_optimizer(tc):
    """AdamW with linear warmup and cosine decay; clipping by global norm when grad_clip_norm > 0."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=tc.learning_rate, warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.num_steps, tc.warmup_steps + 1), end_value=tc.learning_rate * tc.final_lr_fraction,
    )
    tx = optax.adamw(schedule, b1=tc.b1, b2=tc.b2, weight_decay=tc.weight_decay)
    if tc.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(tc.grad_clip_norm), tx)
    return tx, schedule


@dataclasses.dataclass
class Setup:
    graphdef: nnx.GraphDef
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    shardings: dict
    abstract: dict


def make_setup(config, vocab_size: int, mesh) -> tuple[Setup, dict]:
    """Initial train state {params, opt_state, step} sharded on the mesh, and its description."""
    model = build_model(config, vocab_size)
    graphdef, params = nnx.split(model)
    tx, schedule = make_optimizer(config.train)

    def init(params):
        return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

    abstract = jax.eval_shape(init, params)
    shardings = state_shardings(abstract, mesh)
    state = jax.jit(init, out_shardings=shardings)(params)
    return Setup(graphdef, tx, schedule, shardings, abstract), state


def _replicate(tree):
    return jax.tree.map(lambda x: jax.sharding.reshard(x, P()), tree)


def train_step(setup: Setup, config, state, batch):
    """One step. A step whose loss or gradient is non-finite leaves the state unchanged."""
    key = jax.random.fold_in(jax.random.key(config.seed), state["step"])
    mask_key, dropout_key = jax.random.split(key)

    def loss_fn(params):
        model = nnx.merge(setup.graphdef, _replicate(params))  # FSDP: gather to use, shard at rest.
        return masked_loss(model, batch, mask_key, config.model.mask_prob,
                           dropout_key if config.model.dropout else None)

    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = setup.tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    grad_norm = optax.global_norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    keep = {**state, "step": state["step"] + 1}
    new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, keep)
    metrics = {
        "train/loss": loss, "train/grad_norm": grad_norm,
        "train/param_norm": optax.global_norm(state["params"]),
        "train/update_norm": optax.global_norm(updates),
        "train/lr": setup.schedule(state["step"]), "ok": ok,
        **group_norms(grads, config.model.num_layers),
    }
    return new, metrics


def eval_step(graphdef, config, params, batch, key):
    model = nnx.merge(graphdef, params)
    loss, count = masked_loss(model, batch, key, config.model.mask_prob)
    return loss * count, count


def evaluate_loss(model: CellEncoder, cells, config) -> float:
    """Validation masked-expression loss: mean over masked tokens of all cells, fixed masks (seed)."""
    graphdef, params = nnx.split(model)
    step = jax.jit(functools.partial(eval_step, graphdef, config))
    loader = CellLoader(cells, batch_size=config.data.eval_batch_size, seed=config.data.seed,
                        max_len=config.data.max_len, shuffle=False, drop_remainder=False)
    total, count = 0.0, 0.0
    base = jax.random.key(config.seed + 1)
    for i, batch in enumerate(loader.iter_epoch()):
        s, c = step(params, {k: jnp.asarray(v) for k, v in batch.items()}, jax.random.fold_in(base, i))
        total, count = total + float(s), count + float(c)
    return total / max(count, 1.0)


# --------------------------------------------------------------------------- checkpoints
def checkpoint_manager(workdir: pathlib.Path, tc) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(tc.keep_checkpoints),
        enable_async_checkpointing=True,
    )
    return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def restore(mngr, step, setup: Setup):
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), setup.abstract, setup.shardings
    )
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]


def _config_json(config) -> dict:
    return json.loads(config.to_json_best_effort())


def _prepare_workdir(config, workdir: pathlib.Path, vocab: Vocab, resuming: bool):
    """Saves config.json and vocab.json; on resume, refuses a different vocabulary or model."""
    vocab_path, config_path = workdir / "vocab.json", workdir / "config.json"
    if resuming and vocab_path.exists():
        saved = Vocab.load(vocab_path)
        if saved != vocab:
            raise ValueError(
                f"vocabulary mismatch: {workdir} was trained on {saved.size - 3} genes, the data now "
                f"gives {vocab.size - 3}; expected the same genes (or a new --workdir)"
            )
    if resuming and config_path.exists():
        saved = json.loads(config_path.read_text())
        if saved.get("model") != _config_json(config)["model"]:
            raise ValueError(f"config.model differs from the checkpoint's in {workdir}; expected the same model")
    if jax.process_index() == 0:
        vocab.save(vocab_path)
        config_path.write_text(json.dumps(_config_json(config), indent=2))


# --------------------------------------------------------------------------- the loop
class _Logger:
    def __init__(self, workdir: pathlib.Path):
        self.main = jax.process_index() == 0
        if self.main:
            from tensorboardX import SummaryWriter

            self.file = open(workdir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close().
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


def _first_bad(steps_metrics):
    for step, m in steps_metrics:
        if not bool(m["ok"]):
            return step, m
    return None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Trains (or resumes) the model described by `config` in `workdir`.

    Args:
      config: a training config (see configs/default.py).
      workdir: run directory; a rerun with the same directory resumes from its latest checkpoint.

    Returns:
      Final metrics: last train loss, val/loss, steps, mean step time.

    Raises:
      ValueError: bad config or data, vocabulary or model mismatch on resume.
      NonFiniteError: a non-finite loss or gradient (the last good checkpoint is kept).
    """
    if config.get("distributed", False):
        jax.distributed.initialize()
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tc = config.train
    train_cells, val_cells, vocab = make_datasets(config.data)
    mngr = checkpoint_manager(workdir, tc)
    latest = mngr.latest_step()
    _prepare_workdir(config, workdir, vocab, latest is not None)
    mesh = make_mesh(config.mesh)
    if config.data.batch_size % (mesh.size) and config.data.batch_size % jax.device_count():
        raise ValueError(
            f"data.batch_size: got {config.data.batch_size}, expected a multiple of the {mesh.size} devices"
        )
    loader = CellLoader(train_cells, batch_size=config.data.batch_size, seed=config.data.seed,
                        max_len=config.data.max_len, bucket_by_length=config.data.bucket_by_length)
    logger = _Logger(workdir)
    with jax.set_mesh(mesh):
        setup, state = make_setup(config, vocab.size, mesh)
        if latest is not None:
            state, meta = restore(mngr, latest, setup)
            loader.set_state(meta["loader"])
            log.info("resumed from step %d", latest)
        result = _loop(config, workdir, mngr, setup, state, loader, val_cells, logger, mesh)
    mngr.wait_until_finished()
    mngr.close()
    logger.close()
    return result


def _loop(config, workdir, mngr, setup, state, loader, val_cells, logger, mesh) -> dict:
    tc = config.train
    step_fn = jax.jit(functools.partial(train_step, setup, config), donate_argnums=0,
                      out_shardings=(setup.shardings, None))
    start = int(jax.device_get(state["step"]))
    pending, tokens, t_last, step_times = [], 0, time.perf_counter(), []
    last = {}
    progress = None
    if jax.process_index() == 0:
        from tqdm import tqdm

        progress = tqdm(total=tc.num_steps, initial=start, desc="train", file=sys.stderr,
                        disable=not tc.progress_bar, dynamic_ncols=True)
    for step in range(start, tc.num_steps):
        batch = next(loader)
        tokens += int(batch["lengths"].sum())
        state, metrics = step_fn(state, global_batch(batch, mesh))
        pending.append((step, metrics))
        done = step + 1
        at_log = done % tc.log_every == 0 or done == tc.num_steps
        at_save = done % tc.checkpoint_every == 0 or done == tc.num_steps
        at_eval = tc.eval_every and (done % tc.eval_every == 0 or done == tc.num_steps)
        if not (at_log or at_save or at_eval):
            continue
        fetched = jax.device_get(pending)
        now = time.perf_counter()
        step_time = (now - t_last) / len(pending)
        bad = _first_bad(fetched)
        row = {k: v for k, v in fetched[-1][1].items() if k != "ok"}
        row.update({"perf/step_time": step_time, "perf/tokens_per_sec": tokens / (now - t_last)})
        if bad is not None:
            mngr.wait_until_finished()
            bstep, bm = bad
            logger.write(bstep + 1, {k: v for k, v in bm.items() if k != "ok"})
            raise NonFiniteError(
                f"non-finite loss or gradient at step {bstep + 1} (loss={float(bm['train/loss'])}, "
                f"grad_norm={float(bm['train/grad_norm'])}); last good checkpoint: {mngr.latest_step()}"
            )
        if at_eval:
            model = nnx.merge(setup.graphdef, _replicate(state["params"]))
            row["val/loss"] = evaluate_loss(model, val_cells, config)
        if at_log or at_eval:
            logger.write(done, row)
        step_times.append(step_time)
        last = row
        if at_save:
            meta = {"step": done, "loader": loader.get_state()}
            mngr.save(done, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        if progress is not None:
            progress.update(done - progress.n)
            progress.set_postfix(loss=f"{row['train/loss']:.4f}", tok_s=f"{row['perf/tokens_per_sec']:.0f}")
        pending, tokens, t_last = [], 0, time.perf_counter()
    if progress is not None:
        progress.close()
    return {
        "step": tc.num_steps, "train/loss": last.get("train/loss"), "val/loss": last.get("val/loss"),
        "perf/step_time": float(np.median(step_times)) if step_times else None,
    }


def load_model(workdir, step: int | None = None):
    """The model of a run for inference: (model, config, vocab) from the latest (or given) checkpoint.

    Raises:
      FileNotFoundError: no config or checkpoint in workdir.
    """
    workdir = pathlib.Path(workdir)
    if not (workdir / "config.json").exists():
        raise FileNotFoundError(f"--workdir: no config.json in {workdir}; expected a training run directory")
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    vocab = Vocab.load(workdir / "vocab.json")
    mngr = ocp.CheckpointManager((workdir / "checkpoints").absolute(),
                                 options=ocp.CheckpointManagerOptions(read_only=True))
    step = mngr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"--workdir: no checkpoint in {workdir / 'checkpoints'}")
    mesh = jax.make_mesh((jax.device_count(), 1), BATCH_AXES, axis_types=(AxisType.Explicit,) * 2)
    with jax.set_mesh(mesh):
        setup, _ = make_setup(config, vocab.size, mesh)
        state, _ = restore(mngr, step, setup)
        params = jax.device_get(state["params"])
    mngr.close()
    return nnx.merge(setup.graphdef, params), config, vocab
