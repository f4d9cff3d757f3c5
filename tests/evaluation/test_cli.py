"""The command lines: every `python -m eval` subcommand listed, `-h` exits 0, overrides checked."""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `eval` and `configs` are top-level packages of the repo.


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_help_lists_every_subcommand_and_exits_zero():
    top = run("eval", "-h")
    assert top.returncode == 0, top.stderr
    for cmd in (
        "embed",
        "score",
        "compare",
        "stability",
        "demo",
        "study",
        "kernels",
        "train-speed",
    ):
        assert cmd in top.stdout
    study = run("eval", "study", "-h")
    assert study.returncode == 0 and "usage: python -m eval study" in study.stdout
    stability = run("eval", "stability", "-h")
    assert stability.returncode == 0 and "usage: python -m eval stability" in stability.stdout
    assert "--config" in stability.stdout and "--shard" in stability.stdout
    train = run("train", "-h")
    assert train.returncode == 0, train.stderr
    assert "--config" in train.stdout and "--workdir" in train.stdout


def test_study_overrides_use_the_config_and_refuse_unknown_fields():
    from configs import small
    from eval.study import CPU_BUDGET, override

    config = small.get_config()
    override(config, {**CPU_BUDGET, "data.value_encoding": "continuous", "model.dropout": 0.1})
    assert config.train.num_steps == CPU_BUDGET["train.num_steps"]
    assert config.model.value_encoding == "continuous"  # The reference follows data's field.
    assert config.model.dropout == 0.1
    with pytest.raises(ValueError, match="--set: got train.nope=1"):
        override(config, {"train.nope": 1})
    with pytest.raises(ValueError, match="--set: got train.num_steps='many'"):
        override(config, {"train.num_steps": "many"})
    config.train.new_field = 1  # Unlocked again afterwards.


def test_stability_takes_runs_or_a_grid_config_not_both(tmp_path):
    from eval import stability

    with pytest.raises(ValueError, match="expected run directories or --config, one of the two"):
        stability.main([])
    with pytest.raises(ValueError, match="one of the two"):
        stability.main(["runs/a", "--config=configs/study_tiny.py"])
    with pytest.raises(ValueError, match="expected a config with a grid section"):
        stability.main(["--config=configs.smoke"])
    with pytest.raises(ValueError, match="shard: got '2/2'"):
        stability.main(["--config=configs.study_tiny", "--shard=2/2"])
    empty = tmp_path / "none"
    with pytest.raises(ValueError, match="no finished runs in"):
        stability.main(
            ["--config=configs.study_tiny", "--report_only", f"--set=grid.record={empty}"]
        )


def test_load_config_takes_a_module_or_a_file(monkeypatch, tmp_path):
    from eval._overrides import load_config

    monkeypatch.chdir(REPO)
    assert load_config("configs/study_tiny.py").grid.name == "study_tiny"
    assert load_config("configs.study_tiny").grid.name == "study_tiny"
    with pytest.raises(ValueError, match="expected a file under the working directory"):
        load_config(str(tmp_path / "x.py"))


def test_train_speed_and_demo_take_a_config_file():
    # Both load --config with load_config: a file path (configs/x.py) is accepted, and a file
    # outside the repository gets load_config's error (before any model is built).
    for cmd in ("train-speed", "demo"):
        out = run("eval", cmd, "--config=/nowhere/x.py", "--out=/tmp/unused")
        assert out.returncode != 0
        assert "expected a file under the working directory" in out.stderr, out.stderr
