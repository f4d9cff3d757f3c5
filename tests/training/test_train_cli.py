"""Every bad input a one-line answer, before anything is written; a finished run rerun does
nothing and says so; old metrics are never cut silently (issue 13, defects 6-8)."""

import json
import logging
import os
import subprocess

import jax
import pytest
from train_helpers import SYNTHETIC, cli, smoke_config

from sigjax.data import check_file_fields
from sigjax.training import read_metrics, train_and_evaluate

TINY = {**SYNTHETIC, "mesh.data": 1, "train.eval_every": 0, "train.num_steps": 1}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_unknown_field_bad_batch_size_and_help_are_one_line_answers(tmp_path):
    workdir = tmp_path / "new"
    unknown = cli(
        ["--config=configs/smoke.py", f"--workdir={workdir}", "--config.train.nonexistent=1"]
    )
    assert unknown.returncode == 2
    assert one_line(unknown.stderr) == (
        "error: unknown config field train.nonexistent (did you mean train.num_steps?)"
    )
    zero = cli(["--config=configs/smoke.py", f"--workdir={workdir}", "--config.data.batch_size=0"])
    assert zero.returncode == 2
    assert one_line(zero.stderr) == "error: data.batch_size: got 0, expected an integer >= 1"
    assert not workdir.exists()
    usage = cli(["-h"])
    assert usage.returncode == 0 and "--workdir" in usage.stdout


def test_more_cells_per_batch_than_training_cells_is_refused_before_checkpointing(tmp_path):
    # A file of a few cells: the error comes before the checkpoint manager starts (closing it at
    # once printed its cleanup thread's traceback after the error).
    workdir = tmp_path / "few"
    overrides = {**TINY, "data.batch_size": 100}
    args = [f"--config.{k}={v}" for k, v in overrides.items()]
    few = cli(["--config=configs/smoke.py", f"--workdir={workdir}", *args])
    assert few.returncode == 2
    last = few.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data.batch_size: got 100 with only 64 cells"), few.stderr
    assert "Traceback" not in few.stderr
    assert not (workdir / "checkpoints").exists()


def test_rerunning_a_finished_run_says_nothing_to_do(tmp_path):
    workdir = tmp_path / "run"
    args = [
        "--config=configs/smoke.py",
        f"--workdir={workdir}",
        *(f"--config.{k}={v}" for k, v in TINY.items()),
    ]
    # JAX_PLATFORMS left unset: jax probes for a TPU, and that probe's log line stays silent.
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    done = cli(args, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
    again = cli(args, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already at step 1 of 1; nothing to do" in again.stderr
    assert "None" not in again.stdout and "train/loss=" in again.stdout
    for out in (done, again):
        assert "Unable to initialize backend" not in out.stderr
    assert {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()} == before


def test_a_workdir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a run")
    with pytest.raises(ValueError, match=r"--workdir: .*file is a file; expected a directory"):
        train_and_evaluate(smoke_config(**TINY), path)


def _make_read_only(path) -> bool:
    """Makes `path` read-only for this process; False when the system gives no way to."""
    path.chmod(0o555)
    if not os.access(path, os.W_OK):
        return True
    # root ignores the mode bits; the immutable attribute binds root too (where supported).
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


def test_a_read_only_workdir_is_refused(tmp_path):
    workdir = tmp_path / "ro"
    workdir.mkdir()
    if not _make_read_only(workdir):
        pytest.skip("no way to make a directory read-only for this user on this file system")
    try:
        with pytest.raises(ValueError, match=r"--workdir: cannot write in .*ro \("):
            train_and_evaluate(smoke_config(**TINY), workdir)
    finally:
        subprocess.run(["chattr", "-i", str(workdir)], capture_output=True)
        workdir.chmod(0o755)
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("train.learning_rate", -1e-3),
        ("train.learning_rate", float("nan")),
        ("train.warmup_steps", -1),
        ("model.mask_prob", 0.0),
        ("model.mask_prob", 1.0),
        ("model.mask_prob", 1.5),
        # Once accepted: the cosine "decay" climbed to twice the peak learning rate.
        ("train.final_lr_fraction", 2.0),
        # Once numpy's "expected non-negative integer", naming no field, after the workdir was made.
        ("data.seed", -1),
        # Once refused only while reading the data, after the workdir was made.
        ("data.max_len", 1),
        ("data.val_fraction", 1.0),
        ("data.target_sum", float("inf")),
        ("data.gene_selection", "random"),
        ("data.bin_ties", "first"),
        ("data.input_values", "raw"),
        # Once named model.value_encoding (the model field follows the data field).
        ("data.value_encoding", "log"),
        # Once a ZeroDivisionError traceback from jax's initializers.
        ("data.n_bins", 0),
        ("model.mlp_dim", 0),
        # Once trained: a model with no block, a silent negative dropout, NaN at step 1.
        ("model.num_layers", 0),
        ("model.dropout", -0.1),
        ("model.dropout", 1.0),
    ],
)
def test_out_of_range_training_values_are_refused(tmp_path, field, value):
    with pytest.raises(ValueError, match=rf"^{field}: got {value!r}, expected") as info:
        train_and_evaluate(smoke_config(**{**TINY, field: value}), tmp_path / "run")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mesh.data": 16}, r"^mesh: got data=16, fsdp=1 for 8 devices"),
        ({"mesh.data": 2, "data.batch_size": 3}, r"^data.batch_size: got 3, expected a multiple"),
        ({"data.batch_size": 100}, r"^data.batch_size: got 100 with only 64 cells"),
    ],
)
def test_a_run_refused_after_its_workdir_was_made_leaves_none(tmp_path, overrides, message):
    # Checks that need the devices or the data come after the workdir is made (and probed); a
    # refused run used to leave it behind, empty.
    workdir = tmp_path / "new"
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(smoke_config(**{**TINY, **overrides}), workdir)
    assert not workdir.exists()
    # A directory that was there before is kept.
    workdir.mkdir()
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(smoke_config(**{**TINY, **overrides}), workdir)
    assert workdir.is_dir() and list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("data.layer", "counts"),
        ("data.use_raw", True),
        ("data.gene_column", "gene_ids"),
        ("data.label_column", "cell_type"),
    ],
)
def test_a_file_field_for_a_named_data_set_is_refused_not_ignored(tmp_path, field, value):
    # A named set is built as sigjax builds it: these fields were ignored without a word.
    with pytest.raises(
        ValueError, match=rf"^{field}: got {value!r} for data.dataset='synthetic', which is not"
    ):
        train_and_evaluate(smoke_config(**{**TINY, field: value}), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    # Read from an .h5ad file, they are used.
    check_file_fields(smoke_config(**{"data.path": "cells.h5ad", field: value}).data)


def test_cudnn_off_gpu_is_refused_before_the_first_step(tmp_path):
    if jax.default_backend() == "gpu":
        pytest.skip("cuDNN is there on a GPU")
    overrides = {**TINY, "model.attention": "softmax", "model.implementation": "cudnn"}
    # Once jax's RuntimeError("cuDNN is not detected.") traceback at step 1, files written.
    with pytest.raises(ValueError, match=r"^model.implementation: got 'cudnn' on the cpu backend"):
        train_and_evaluate(smoke_config(**overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_distributed_without_a_launch_names_the_field(tmp_path):
    # JAX's own error ("coordinator_address should be defined.") named no config field.
    workdir = tmp_path / "run"
    args = [f"--config.{k}={v}" for k, v in TINY.items()]
    out = cli(
        ["--config=configs/smoke.py", f"--workdir={workdir}", "--config.distributed=True", *args]
    )
    assert out.returncode == 2
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "error: distributed: got True, but jax.distributed.initialize() failed "
        "(coordinator_address should be defined.); expected a multi-process launch"
    ), out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert not workdir.exists()


def test_metrics_without_a_checkpoint_are_kept_not_cut(tmp_path, caplog):
    old = [{"step": s, "train/loss": 1.0} for s in range(1, 401)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    with caplog.at_level(logging.WARNING, logger="sigjax"):
        train_and_evaluate(smoke_config(**TINY), tmp_path)
    kept = list(tmp_path.glob("metrics.before-*.jsonl"))
    assert len(kept) == 1
    assert [json.loads(x) for x in kept[0].read_text().splitlines()] == old
    assert [r["step"] for r in read_metrics(tmp_path)] == [1]
    assert "400 rows (steps 1-400)" in caplog.text and kept[0].name in caplog.text
