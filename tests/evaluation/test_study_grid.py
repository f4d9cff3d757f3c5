"""The study and stability grids from one config: records, resume after a kill, the tables."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `eval` and `configs` are top-level packages of the repo.

from sigjax.evaluation import grid_from_config, read_records, run_config, run_study  # noqa: E402

SCORES = ("val_loss", "knn_accuracy", "knn_purity", "nmi", "ari", "silhouette", "clisi")


def child_env(tmp_path) -> dict:
    """One CPU device (not the test session's 8), and a compilation cache shared by the
    processes of one test: runs that differ only in their seed compile the same programs."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )
    return env


def fake_record(root, dataset, attention, lr, seed, val_loss, nmi, status="finished"):
    path = pathlib.Path(root) / dataset / f"{attention}_lr{lr:g}_seed{seed}"
    path.mkdir(parents=True)
    cell = {"dataset": dataset, "attention": attention, "learning_rate": lr, "seed": seed}
    run = {
        "cell": cell,
        "status": status,
        "error": None,
        "train_time_s": 12.0,
        "started": "2026-12-01T10:00:00+00:00",
        "ended": f"2026-12-01T10:0{seed}:30+00:00",
        "commit": "abc1234",
        "device": "GPU (NVIDIA H200) x1",
        "command": "c",
        "workdir": "w",
    }
    (path / "run.json").write_text(json.dumps(run))
    if status == "finished":
        scores = {k: 0.5 for k in SCORES} | {"val_loss": val_loss, "nmi": nmi, "n_cells": 90}
        scores |= {"pca_hvg/nmi": 0.4, "pca_hvg/knn_purity": 0.6}
        (path / "scores.json").write_text(json.dumps(scores))
    return path


def test_grid_config_cells_and_run_config():
    from configs import study_base, study_tiny

    base = study_base.get_config()
    cells = grid_from_config(base)
    assert len(cells) == 3 * 2 * 3 * 3
    assert {c.learning_rate for c in cells} == {3e-4, 1e-3, 3e-3}
    assert [c.seed for c in cells[:18]] == [0] * 18  # Seed-major: whole seeds first.
    one = grid_from_config(base, datasets=["zeisel"], attentions=["softmax"], seeds=[2])
    assert [c.name for c in one] == ["softmax_lr0.0003_seed2", "softmax_lr0.001_seed2",
                                     "softmax_lr0.003_seed2"]  # fmt: skip
    c = run_config(base, one[1])
    assert "grid" not in c and "grid" in base  # The run's config.json holds no grid.
    assert (c.data.dataset, c.model.attention, c.train.learning_rate) == ("zeisel", "softmax", 1e-3)
    assert (c.seed, c.data.seed) == (2, 2)
    assert base.model.embed_dim == 512 and base.model.num_layers == 8  # configs/base.py size.
    tiny = grid_from_config(study_tiny.get_config())
    assert len(tiny) == 8 and {c.dataset for c in tiny} == {"pbmc68k_reduced"}
    with pytest.raises(ValueError, match="learning_rates: got -1"):
        grid_from_config(base, learning_rates=[-1])


def test_stress_grid_config_is_the_issue_grid():
    from configs import stress_160m_grid

    c = stress_160m_grid.get_config()
    cells = grid_from_config(c)
    assert {(x.attention, x.learning_rate, x.seed) for x in cells} == {
        (a, lr, s) for a in ("sigmoid", "softmax") for lr in (1e-3, 3e-3, 1e-2) for s in (0, 1, 2)
    }
    assert c.train.num_steps >= 600 and c.train.grad_clip_norm == 0.0
    assert c.data.max_len == 8192 and c.model.embed_dim == 1024 and c.model.num_layers == 12
    assert {x.dataset for x in cells} == {"synthetic"}


def test_report_from_records_alone_and_finished_runs_skipped(tmp_path, monkeypatch, capsys):
    from eval import study

    record = tmp_path / "record"
    for seed in (0, 1):
        for lr, sig, soft in ((1e-3, 2.0, 2.6), (3e-3, 1.8, 2.9)):
            fake_record(record, "pbmc68k_reduced", "sigmoid", lr, seed, sig + seed / 10, 0.6)
            fake_record(record, "pbmc68k_reduced", "softmax", lr, seed, soft + seed / 10, 0.3)
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nA hand-written reading that must stay.\n")

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("sigjax.training.train_and_evaluate", no_training)
    monkeypatch.chdir(REPO)
    argv = ["--config=configs/study_tiny.py", f"--record={record}", f"--results={results}"]
    study.main([*argv, f"--out={tmp_path / 'work'}"])  # Every run has a record: none trains.
    out = capsys.readouterr().out
    assert out.count("done (finished), skipping") == 8
    text = results.read_text()
    assert text.startswith("# Results\n\nA hand-written reading that must stay.\n\n")
    assert "<!-- study:study_tiny -->\n## Study `study_tiny`" in text
    assert text.rstrip().endswith("<!-- /study:study_tiny -->")
    assert "| pbmc68k_reduced | sigmoid | 0.003 | 2 | 0 | 1.8500 ± 0.0707 | * |" in text
    assert "| pbmc68k_reduced | softmax | 0.001 | 2 | 0 | 2.6500 ± 0.0707 | * |" in text
    assert "sigmoid at lr 0.003, softmax at lr 0.001" in text
    # NMI 0.6 vs 0.3 in both seeds: beyond a zero spread; PCA 0.4 beside it.
    assert (
        "| nmi | 0.6000 ± 0.0000 | 0.3000 ± 0.0000 | +0.3000 | +100.0% | yes | 2/2 | 0.4000 |"
        in (text)
    )
    assert "- Device: GPU (NVIDIA H200) x1" in text and "(runs: `abc1234`)" in text
    assert text.count("| abc1234 | 2026-12-01T10:0") == 8  # Per run: commit and date.
    assert "![lr_sweep](record/lr_sweep.png)" in text
    assert (record / "lr_sweep.png").stat().st_size > 10_000
    assert (record / "scores.png").stat().st_size > 10_000
    first = text
    study.main([*argv, "--report_only"])  # Again: the section is replaced, not appended.
    assert results.read_text().count("<!-- study:study_tiny -->") == 1
    second = results.read_text()

    def without_command(t):
        return [line for line in t.splitlines() if not line.startswith("- Command:")]

    assert without_command(second) == without_command(first)  # Same records, same tables.
    rows = run_study(
        __import__("configs.study_tiny").study_tiny.get_config(),
        tmp_path / "work",
        datasets=["pbmc68k_reduced"],
        seeds=[1],
        learning_rates=[1e-3],
        record=record,
    )
    assert [(r["attention"], r["status"]) for r in rows] == [
        ("sigmoid", "finished"),
        ("softmax", "finished"),
    ]
    assert len(read_records(record)) == 8


@pytest.mark.slow
def test_tiny_grid_resumes_after_a_kill_and_writes_the_table(tmp_path):
    record, results = tmp_path / "record", tmp_path / "results.md"
    results.write_text("# Results\n\nkept\n")
    cmd = [
        sys.executable,
        "-m",
        "eval",
        "study",
        "--config=configs/study_tiny.py",
        f"--out={tmp_path / 'work'}",
        f"--record={record}",
        f"--results={results}",
    ]
    env = child_env(tmp_path)
    first = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 400
    while not list(record.glob("*/*/run.json")):
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "no run finished in 400 s"
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)  # Mid-grid: the next run may be half-trained.
    first.communicate()
    done = {p: p.read_text() for p in record.glob("*/*/run.json")}
    assert 1 <= len(done) < 8
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for path, before in done.items():
        assert f"{path.parent.name}: done (finished), skipping" in second.stdout
        assert path.read_text() == before  # Not trained again.
    assert second.stdout.count(": training in ") == 8 - len(done)
    rows = read_records(record)
    assert len(rows) == 8 and {r["status"] for r in rows} == {"finished"}
    for r in rows:
        assert r["commit"] and r["device"].startswith("CPU") and r["ended"] >= r["started"]
        assert r["score_time_s"] > 0 and isinstance(r["train_time_s"], float)
        assert all(isinstance(r[k], float) for k in SCORES)
        assert r["pca_hvg/nmi"] > 0 and r["n_cells"] > 0
        assert (pathlib.Path(r["record"]) / "metrics.jsonl.gz").stat().st_size > 0
        assert not (pathlib.Path(r["record"]) / "metrics.jsonl").exists()
    text = results.read_text()
    assert text.startswith("# Results\n\nkept\n\n<!-- study:study_tiny -->\n")
    assert text.rstrip().endswith("<!-- /study:study_tiny -->")
    sweep = [line for line in text.splitlines() if line.startswith("| pbmc68k_reduced | s")]
    assert sum(line.endswith("| * |") for line in sweep) == 2  # One chosen rate per attention.
    table = text.split("### pbmc68k_reduced (")[1].split("\n\n")[1].splitlines()
    metrics = [line.split("|")[1].strip() for line in table[2:]]
    scores = ["knn_accuracy", "silhouette", "clisi", "isolated_labels", "knn_purity", "nmi", "ari"]
    assert metrics[:8] == ["val_loss", *scores]
    # The same models' other readout (study_tiny embeds with the decoder readout): pooled.
    assert sorted(metrics[8:]) == sorted(f"pooled_readout/{k}" for k in scores)
    assert all(line.split("|")[-2].strip() for line in table[3:])  # PCA beside every score.
    assert text.split("### Per run")[1].count("| pbmc68k_reduced |") == 8


@pytest.mark.slow
def test_stability_grid_trains_missing_runs_and_reports(tmp_path):
    record, report = tmp_path / "record", tmp_path / "report"
    cmd = [
        sys.executable,
        "-m",
        "eval",
        "stability",
        "--config=configs/study_tiny.py",
        "--attentions=softmax",
        "--learning_rates=3e-3",
        "--seeds=1",
        f"--set=grid.workdir={tmp_path / 'work'}",
        f"--set=grid.record={record}",
        "--set=grid.delete_checkpoints=True",
        f"--out={report}",
    ]
    env = child_env(tmp_path)
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    name = "softmax_lr0.003_seed1"
    assert f"| {name} | softmax | 0.003 | 1 | 4 |" in run.stdout
    assert "| softmax | 0.003 | 0/1 | 1 |" in run.stdout  # 4 steps: too short to tell.
    assert (record / "pbmc68k_reduced" / name / "run.json").exists()
    assert not (tmp_path / "work" / "pbmc68k_reduced" / name / "checkpoints").exists()
    assert (report / "stability.png").stat().st_size > 10_000
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"{name}: done (finished), skipping" in again.stdout
