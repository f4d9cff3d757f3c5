"""The run directory: Orbax checkpoints (state plus data position), config.json and vocab.json,
and `load_model`, which reads a run back for inference."""

import json
import pathlib

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx

from sigjax._io import atomic_write
from sigjax.data import Vocab
from sigjax.model import EncoderConfig
from sigjax.training._mesh import single_device_mesh
from sigjax.training._steps import Setup, make_setup

CONFIG_FILE, VOCAB_FILE, CHECKPOINTS = "config.json", "vocab.json", "checkpoints"


def checkpoint_manager(workdir: pathlib.Path, tc) -> ocp.CheckpointManager:
    """Async Orbax manager keeping the latest `tc.keep_checkpoints`; half-written ones from a
    killed run are removed at start (cleanup_tmp_directories) and never restored."""
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(tc.keep_checkpoints),
        enable_async_checkpointing=True,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager((workdir / CHECKPOINTS).absolute(), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state, loader_state: dict, config) -> None:
    """Saves the train state of `step` (asynchronously) with its metadata: step, the data
    loader's position after the step's batch, and the config."""
    meta = {"step": step, "loader": loader_state, "config": config_json(config)}
    mngr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
    )


def restore(mngr: ocp.CheckpointManager, step: int, setup: Setup):
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


def config_json(config) -> dict:
    """The config as the plain dict saved in config.json and in each checkpoint's metadata."""
    return json.loads(config.to_json_best_effort())


def read_saved_config(path) -> dict:
    """A run's saved config.json, in today's spelling.

    Runs saved before 2026-12-01 spelled the automatic attention implementation "auto" (or "");
    it is None now, the one spelling the attention ops accept.
    """
    saved = json.loads(pathlib.Path(path).read_text())
    model = saved.get("model", {})
    if model.get("implementation") in ("auto", ""):
        model["implementation"] = None
    return saved


def _model_differences(saved: dict, new: dict) -> dict:
    """config.model fields that differ, name -> (saved, new). A field the saved run predates
    counts as its `EncoderConfig` default, the behaviour that run had."""
    old = {**EncoderConfig.added_defaults(), **saved.get("model", {})}
    new = new["model"]
    return {
        k: (old.get(k), new.get(k))
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    }


def prepare_workdir(config, workdir: pathlib.Path, vocab: Vocab, resuming: bool) -> None:
    """Saves config.json and vocab.json; on resume, refuses a different vocabulary or model
    before anything is written.

    Raises:
      ValueError: on resume, another vocabulary or another config.model than the saved ones.
    """
    vocab_path, config_path = workdir / VOCAB_FILE, workdir / CONFIG_FILE
    if resuming and vocab_path.exists():
        saved = Vocab.load(vocab_path)
        if saved != vocab:
            raise ValueError(
                f"vocabulary mismatch: {workdir} was trained on {saved.size} tokens, the data now "
                f"gives {vocab.size} (or other genes); expected the same genes (or a new --workdir)"
            )
    if resuming and config_path.exists():
        diff = _model_differences(read_saved_config(config_path), config_json(config))
        if diff:
            fields = ", ".join(f"{k}: saved {a!r}, got {b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"config.model: {fields} (checkpoint in {workdir}); expected the same model "
                "(or a new --workdir)"
            )
    if jax.process_index() == 0:
        vocab.save(vocab_path)
        atomic_write(config_path, json.dumps(config_json(config), indent=2))


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
        if step is None:
            step = mngr.latest_step()
        if step is None or step not in steps:
            raise FileNotFoundError(
                f"step: got {step}, expected one of the checkpoints {sorted(steps)} in "
                f"{workdir / CHECKPOINTS}"
            )
        mesh = single_device_mesh()
        with jax.set_mesh(mesh):
            setup, _ = make_setup(config, vocab.size, mesh)
            state, _ = restore(mngr, step, setup)
            params = jax.device_get(state["params"])
    finally:
        mngr.close()
    return nnx.merge(setup.graphdef, params), config, vocab
