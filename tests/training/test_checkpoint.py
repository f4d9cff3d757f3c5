"""The checkpoint rules: no non-finite state is saved or loaded, a corrupt checkpoint is skipped
for the newest intact one, and a resume with another config is refused before anything is
written (issue 13, defects 1-3)."""

import json
import logging
import pathlib
import shutil
import sys

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from train_helpers import smoke_config

from sigjax.data import Vocab
from sigjax.training import NonFiniteError, load_model, make_mesh, train_and_evaluate
from sigjax.training import _checkpoint as ckpt
from sigjax.training._steps import make_setup

BASE = {"mesh.data": 1, "train.eval_every": 0, "train.keep_checkpoints": 5}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """configs/smoke.py, 4 steps, checkpoints at 2 and 4."""
    workdir = tmp_path_factory.mktemp("run")
    config = smoke_config(**BASE)
    train_and_evaluate(config, workdir)
    return config, workdir


def copy(run, tmp_path, name="copy") -> pathlib.Path:
    target = tmp_path / name
    shutil.copytree(run[1], target)
    return target


def params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def largest_file(step_dir: pathlib.Path) -> pathlib.Path:
    return max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def corrupt(step_dir: pathlib.Path, how: str) -> None:
    """Damages a checkpoint as a disk, a user or a copy gone wrong would."""
    data = largest_file(step_dir / "state")  # The array data.
    if how == "truncated":
        data.write_bytes(data.read_bytes()[:1000])
    elif how == "deleted":
        data.unlink()
    elif how == "bit-flipped":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0x10  # Inside the stored values: Orbax itself reads it back fine.
        data.write_bytes(bytes(raw))
    elif (
        how == "index-flipped"
    ):  # The OCDBT manifest: Orbax fails, with TensorStore reads in flight.
        index = step_dir / "state" / "manifest.ocdbt"
        raw = bytearray(index.read_bytes())
        raw[50] ^= 0x01
        index.write_bytes(bytes(raw))
    elif how == "emptied":
        shutil.rmtree(step_dir)
        step_dir.mkdir()
    else:
        raise ValueError(how)


# --------------------------------------------------------------------------- defect 1: non-finite
def test_a_non_finite_update_is_never_applied_or_saved(tmp_path):
    # 1e39 is inf in float32: loss and gradient of step 1 are finite, its update is not.
    config = smoke_config(
        **{**BASE, "train.learning_rate": 1e39, "train.warmup_steps": 0},
        **{"train.checkpoint_every": 1},
    )
    with pytest.raises(NonFiniteError, match="at step 1 .*no checkpoint saved yet") as info:
        train_and_evaluate(config, tmp_path)
    assert "update_norm=nan" in str(info.value) or "update_norm=inf" in str(info.value)
    assert not ckpt.has_checkpoints(tmp_path)
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert (
        row["step"] == 1 and np.isfinite(row["train/loss"]) and np.isfinite(row["train/grad_norm"])
    )


def _save_nan_checkpoint(workdir: pathlib.Path, step: int) -> None:
    """A checkpoint with NaN parameters, written as the code before issue 13 could."""
    config = ml_collections.ConfigDict(ckpt.read_saved_config(workdir / "config.json"))
    mngr = ckpt.checkpoint_manager(workdir, config.train)
    mesh = make_mesh(config.mesh)
    with jax.set_mesh(mesh):
        _, state = make_setup(config, Vocab.load(workdir / "vocab.json").size, mesh)
    state = {**state, "params": jax.tree.map(lambda x: x * np.nan, state["params"])}
    with pytest.raises(ValueError, match=f"step {step}: non-finite parameters; not saved"):
        ckpt.save(mngr, step, state, {}, config)  # Today's save refuses it.
    mngr.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave({"step": step, "loader": {}, "config": {}}),
        ),
    )
    mngr.wait_until_finished()
    mngr.close()


def test_load_model_and_resume_refuse_non_finite_parameters(run, tmp_path):
    workdir = copy(run, tmp_path)
    _save_nan_checkpoint(workdir, 6)
    with pytest.raises(ValueError, match=rf"checkpoint step 6 in {workdir}: non-finite") as info:
        load_model(workdir)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="step 6 .*non-finite"):
        train_and_evaluate(smoke_config(**BASE, **{"train.num_steps": 8}), workdir)
    assert same(params(load_model(workdir, step=4)[0]), params(load_model(run[1])[0]))


# --------------------------------------------------------------------------- defect 3: corruption
@pytest.mark.parametrize("how", ["truncated", "deleted", "bit-flipped", "index-flipped", "emptied"])
def test_load_model_falls_back_past_a_corrupt_latest_checkpoint(run, tmp_path, how, caplog):
    workdir = copy(run, tmp_path)
    corrupt(workdir / "checkpoints" / "4", how)
    with caplog.at_level(logging.WARNING, logger="sigjax"):
        model, _, _ = load_model(workdir)
    assert same(params(model), params(load_model(run[1], step=2)[0]))
    assert any(
        "checkpoint step 4" in r.getMessage() and "skipped" in r.getMessage()
        for r in caplog.records
    )
    with pytest.raises(ValueError, match="step 4") as info:
        load_model(workdir, step=4)  # The one asked for: no silent substitute.
    assert "\n" not in str(info.value)


def test_resume_falls_back_to_the_newest_intact_checkpoint(run, tmp_path, caplog, monkeypatch):
    workdir = copy(run, tmp_path)
    corrupt(workdir / "checkpoints" / "4", "index-flipped")
    reports = []  # What would print as dozens of "Event loop is closed" tracebacks.
    monkeypatch.setattr(sys, "unraisablehook", reports.append)
    with caplog.at_level(logging.WARNING, logger="sigjax"):
        result = train_and_evaluate(run[0], workdir)
    monkeypatch.undo()
    assert reports == []
    assert result["step"] == 4
    assert "checkpoint step 4" in caplog.text and "skipped" in caplog.text
    # The corrupt one is kept aside, and steps 3-4 are redone exactly.
    assert (workdir / "skipped_checkpoints" / "4").is_dir()
    assert same(params(load_model(workdir)[0]), params(load_model(run[1])[0]))


def test_no_checkpoint_restores_is_a_one_line_error(run, tmp_path):
    workdir = copy(run, tmp_path)
    corrupt(workdir / "checkpoints" / "4", "truncated")
    corrupt(workdir / "checkpoints" / "2", "emptied")
    for call in (lambda: load_model(workdir), lambda: train_and_evaluate(run[0], workdir)):
        with pytest.raises(ValueError, match="no checkpoint in .* restores") as info:
            call()
        assert "\n" not in str(info.value) and "step 4" in str(info.value)


# ------------------------------------------------------------------ defect 2: resume config
@pytest.mark.parametrize(
    "field, value",
    [("data.n_bins", 21), ("data.max_len", 64), ("seed", 1), ("train.learning_rate", 0.01)],
)
def test_resume_with_another_config_is_refused_before_anything_is_written(
    run, tmp_path, field, value
):
    workdir = copy(run, tmp_path)
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=rf"{field}: saved .*, got {value!r}") as info:
        train_and_evaluate(smoke_config(**BASE, **{field: value}), workdir)
    assert "\n" not in str(info.value)
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_resume_on_other_cells_is_refused_before_anything_is_written(run, tmp_path):
    # The saved split stands for the cells the run trained on and held out; other cells under
    # the same config (the data file replaced) would train on the held-out ones.
    workdir = copy(run, tmp_path)
    split = json.loads((workdir / ckpt.SPLIT_FILE).read_text())
    assert split["train_cells"] > 0 and split["heldout_cells"] > 0
    (workdir / ckpt.SPLIT_FILE).write_text(json.dumps({**split, "heldout_ids_sha256": "0" * 64}))
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="data: the cells differ .*heldout cells with other"):
        train_and_evaluate(smoke_config(**BASE, **{"train.num_steps": 6}), workdir)
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before
    # A run saved before split.json existed resumes, and gets one.
    (workdir / ckpt.SPLIT_FILE).unlink()
    assert train_and_evaluate(smoke_config(**BASE, **{"train.num_steps": 6}), workdir)["step"] == 6
    assert json.loads((workdir / ckpt.SPLIT_FILE).read_text()) == split


def test_resume_safe_fields_may_change(run, tmp_path):
    workdir = copy(run, tmp_path)
    changed = {"train.checkpoint_every": 1, "train.log_every": 2, "train.keep_checkpoints": 2}
    assert train_and_evaluate(smoke_config(**{**BASE, **changed}), workdir)["step"] == 4
    assert (
        ckpt.config_differences(
            ckpt.config_json(run[0]), ckpt.config_json(smoke_config(**{**BASE, **changed}))
        )
        == {}
    )


def test_a_field_the_saved_run_predates_compares_with_its_old_behaviour(run, monkeypatch):
    saved = ckpt.config_json(run[0])
    del saved["model"]["attention_output_norm"]  # An EncoderConfig field; old behaviour False.
    new = ckpt.config_json(run[0])
    new["model"]["attention_output_norm"] = False
    new["data"]["future_field"] = "all"  # A field added later, declared in ADDED_FIELDS.
    monkeypatch.setitem(ckpt.ADDED_FIELDS, "data.future_field", "all")
    assert ckpt.config_differences(saved, new) == {}
    new["model"]["attention_output_norm"] = True
    assert ckpt.config_differences(saved, new) == {"model.attention_output_norm": (False, True)}
    new["model"]["attention_output_norm"] = False
    new["data"]["future_field"] = "hvg"
    assert ckpt.config_differences(saved, new) == {"data.future_field": ("all", "hvg")}
    monkeypatch.delitem(ckpt.ADDED_FIELDS, "data.future_field")
    new["data"]["future_field"] = "all"
    # Undeclared, the new field is a difference: the mechanism makes adding it a conscious step.
    assert ckpt.config_differences(saved, new) == {"data.future_field": ("<absent>", "all")}


def test_read_saved_config_fills_fields_the_run_predates(run, tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    saved = ckpt.config_json(run[0])
    del saved["model"]["attention_output_norm"]
    path.write_text(json.dumps(saved))
    monkeypatch.setitem(ckpt.ADDED_FIELDS, "data.future_field", "all")
    read = ckpt.read_saved_config(path)
    assert read["model"]["attention_output_norm"] is False
    assert read["data"]["future_field"] == "all"


def test_a_run_saved_before_input_values_existed_resumes_as_counts(run):
    saved = ckpt.config_json(run[0])
    del saved["data"]["input_values"]  # As written before the field was added.
    new = ckpt.config_json(run[0])
    new["data"]["input_values"] = "counts"  # What those runs did: values read as they were.
    assert ckpt.config_differences(saved, new) == {}
    new["data"]["input_values"] = "log1p"
    assert ckpt.config_differences(saved, new) == {"data.input_values": ("counts", "log1p")}


def test_the_orphaned_read_hook_drops_only_orphaned_read_errors():
    from types import SimpleNamespace

    from sigjax.training._checkpoint import _DropOrphanedReads

    passed = []
    hook = _DropOrphanedReads(passed.append)
    orphaned = (
        RuntimeError("Event loop is closed"),
        Exception("Encountered error while reading array index: (slice(0, 4),)"),
    )
    other = (RuntimeError("Event loop is closed soon"), ValueError("a real bug"))
    for exc in (*orphaned, *other):
        hook(SimpleNamespace(exc_value=exc))
    assert [u.exc_value for u in passed] == list(other)
