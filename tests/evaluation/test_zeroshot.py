"""Zero-shot embedding: a tiny pooled run pretrained on fake package archives embeds a labelled
set it never trained on, scored next to the PCA baseline; sets without symbols are reported."""

import json
import pathlib
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1].parent
for path in (REPO, REPO / "tests" / "data"):  # `configs`, `eval` and the fake archives.
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import fake_packages  # noqa: E402


@pytest.fixture(scope="module")
def pooled_run(tmp_path_factory):
    from configs import pretrain_pooled_tiny
    from sigjax.training import train_and_evaluate

    folder = tmp_path_factory.mktemp("archives")
    fake_packages.all_packages(folder, tmp_path_factory.mktemp("h5"))
    fake_packages.pyplnmodels(folder, n_per_label=12)  # 36 labelled cells for 5 folds.
    config = pretrain_pooled_tiny.get_config()
    config.data.path = str(folder)
    config.train.eval_every = 0  # No validation loss needed here: one compile less.
    workdir = tmp_path_factory.mktemp("pooled_run")
    train_and_evaluate(config, workdir)
    return workdir, folder


def test_zeroshot_table_with_pca_baseline(pooled_run, tmp_path, capsys):
    from eval.__main__ import main
    from sigjax.data import Vocab

    workdir, folder = pooled_run
    vocab = Vocab.load(workdir / "vocab.json")
    assert "CD4" in vocab.genes and "Cd4" not in vocab.genes  # One vocabulary, upper case.
    main(
        [
            "zeroshot",
            f"--workdir={workdir}",
            "--datasets=scmark,zeisel,cbmc",
            f"--source={folder}",
            f"--out={tmp_path}",
        ]
    )
    printed = capsys.readouterr().out
    # scMARK's 8 symbols: FTL, CD68, LYZ are in no pretraining set, so they are dropped.
    assert "scmark: 36 cells; 5 of 8 symbols in the vocabulary, 3 dropped" in printed
    result = json.loads((tmp_path / "zeroshot.json").read_text())
    rows = {r["dataset"]: r for r in result["rows"]}
    assert result["by_symbol"] and result["folds"] == 5
    scm = rows["scmark"]
    assert (scm["cells"], scm["matched"], scm["genes"], scm["labels"]) == (36, 5, 8, 3)
    assert not scm["seen_in_pretraining"]
    # Where the time went, per phase of each embedded set (none for the sets not embedded).
    assert set(result["seconds"]["scmark"]) == {"data", "pca", "embed", "score"}
    assert "zeisel" not in result["seconds"] and result["seconds"]["load_model"] > 0
    for method in ("sigjax", "pca_hvg"):
        s = scm[method]
        assert set(s) >= {"knn_accuracy", "knn_purity", "nmi", "ari", "silhouette", "clisi"}
        assert all(np.isfinite(v) for v in s.values())
        assert 0 <= s["knn_accuracy"] <= 1
    # The markers make the labels separable: PCA of the same cells must find them.
    assert scm["pca_hvg"]["knn_accuracy"] > 0.6
    for name in ("zeisel", "cbmc"):
        assert "not embeddable zero-shot" in rows[name]["status"]
    table = (tmp_path / "zeroshot.md").read_text()
    assert "| scmark | 36 | 5 / 8 | sigjax |" in table
    assert "| scmark | 36 | all | pca_hvg |" in table
    assert "- zeisel: not embeddable zero-shot: its genes have no symbols" in table


def test_kfold_knn_accuracy_and_errors(pooled_run):
    from sigjax.evaluation import kfold_knn_accuracy, zeroshot

    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    labels = np.repeat(["a", "b", "c"], 10)
    assert kfold_knn_accuracy(x, labels) == 1.0
    assert kfold_knn_accuracy(np.zeros((30, 2)), labels) < 0.5  # Ties: no information.
    with pytest.raises(ValueError, match="folds: got 1"):
        kfold_knn_accuracy(x, labels, folds=1)
    workdir, folder = pooled_run
    with pytest.raises(ValueError, match="--datasets: got 'nope'"):
        zeroshot(workdir, "nope", source=folder)
    with pytest.raises(ValueError, match="--max_cells: got 2"):
        zeroshot(workdir, "scmark", source=folder, max_cells=2)


def _record(folder, attention, knn, pca_knn=0.8, rows_extra=()):
    scores = dict.fromkeys(("knn_purity", "nmi", "ari", "silhouette", "clisi"), 0.5)
    row = {
        "dataset": "pbmc68k_reduced",
        "sigjax": {**scores, "knn_accuracy": knn},
        "pca_hvg": {**scores, "knn_accuracy": pca_knn},
    }
    folder.mkdir(parents=True)
    result = {"attention": attention, "rows": [row, *rows_extra]}
    (folder / "zeroshot.json").write_text(json.dumps(result))
    return folder


def test_zeroshot_summary_spread_rule_and_cli(tmp_path, capsys):
    from eval.__main__ import main
    from sigjax.evaluation import zeroshot_summary, zeroshot_summary_markdown

    skipped = {"dataset": "zeisel", "status": "not embeddable zero-shot"}
    records = [
        _record(tmp_path / "sig0", "sigmoid", 0.70, rows_extra=[skipped]),
        _record(tmp_path / "sig1", "sigmoid", 0.72),
        _record(tmp_path / "soft0", "softmax", 0.60),
        _record(tmp_path / "soft1", "softmax", 0.62),
    ]
    summary = zeroshot_summary(records)
    (s,) = summary["sets"]  # The status row is left out.
    sig, soft = s["attentions"]["sigmoid"], s["attentions"]["softmax"]
    assert sig["n"] == soft["n"] == 2
    assert sig["mean"]["knn_accuracy"] == pytest.approx(0.71)
    assert sig["std"]["knn_accuracy"] == pytest.approx(np.std([0.70, 0.72], ddof=1))
    # 0.71 vs 0.61, stds ~0.014 each: beyond the spread; the equal scores are not.
    assert s["beyond_spread"] == {"knn_accuracy": pytest.approx(0.10)}
    assert s["pca_hvg"]["knn_accuracy"] == 0.8
    table = zeroshot_summary_markdown(summary)
    assert "| pbmc68k_reduced | sigmoid | 2 | 0.710 ± 0.014 |" in table
    assert "beyond the seed spread: knn_accuracy (+0.100)" in table
    # One record per attention: no spread, so no call either way.
    assert zeroshot_summary(records[::2])["sets"][0]["beyond_spread"] is None

    main(["zeroshot-summary", *map(str, records), f"--out={tmp_path / 'out' / 'summary'}"])
    assert "| pbmc68k_reduced | PCA of HVGs |  | 0.800 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["sets"][0]["attentions"]

    other_cells = _record(tmp_path / "other", "softmax", 0.6, pca_knn=0.7)
    with pytest.raises(ValueError, match="PCA baseline differs"):
        zeroshot_summary([records[0], other_cells])
    with pytest.raises(ValueError, match="has no zeroshot.json"):
        zeroshot_summary([tmp_path / "nothing"])
    with pytest.raises(ValueError, match="records: got none"):
        zeroshot_summary([])


def _zs_record(root, attention, lr, seed, val_loss, knn, status="finished"):
    """A zero-shot grid record: run.json, and scores.json as `zeroshot_run_scores` writes it."""
    path = root / "pooled" / f"{attention}_lr{lr:g}_seed{seed}"
    path.mkdir(parents=True)
    cell = {"dataset": "pooled", "attention": attention, "learning_rate": lr, "seed": seed}
    run = {"cell": cell, "status": status, "train_time_s": 5.0, "commit": "abc1234"}
    (path / "run.json").write_text(json.dumps(run))
    if status == "finished":
        scores = {k: 0.5 for k in ("knn_purity", "nmi", "ari", "silhouette", "clisi")}
        row = {"dataset": "scmark", "cells": 36, "sigjax": {**scores, "knn_accuracy": knn},
               "pca_hvg": {**scores, "knn_accuracy": 0.9}}  # fmt: skip
        skipped = {"dataset": "zeisel", "status": "not embeddable zero-shot"}
        payload = {"val_loss": val_loss, "zeroshot": [row, skipped], "zeroshot_seconds": {}}
        (path / "scores.json").write_text(json.dumps(payload))


def test_zeroshot_grid_rows_lr_choice_and_report(tmp_path):
    from sigjax.evaluation import read_records, report_study
    from sigjax.evaluation._study import lr_sweep, zeroshot_rows

    record = tmp_path / "record"
    for seed in (0, 1):
        # Sigmoid: lower corpus loss at 1e-3; at 3e-3 one seed is non-finite, so 3e-3 is out.
        _zs_record(record, "sigmoid", 1e-3, seed, 0.40 + seed / 100, 0.70 + seed / 100)
        _zs_record(record, "sigmoid", 3e-3, seed, 0.30, 0.9, "non-finite" if seed else "finished")
        _zs_record(record, "softmax", 1e-3, seed, 0.45, 0.60 + seed / 100)
        _zs_record(record, "softmax", 3e-3, seed, 0.41, 0.62 + seed / 100)
    rows = zeroshot_rows(read_records(record), ("pbmc68k_reduced", "scmark", "zeisel"))
    # One row per run for scMARK (the only set embedded); PBMC and Zeisel were never embedded.
    assert {r["dataset"] for r in rows} == {"scmark"} and len(rows) == 8
    ok = next(r for r in rows if r["attention"] == "softmax" and r["learning_rate"] == 3e-3)
    assert ok["knn_accuracy"] == 0.62 and ok["pca_hvg/knn_accuracy"] == 0.9
    assert ok["val_loss"] == 0.41 and ok["n_cells"] == 36 and "zeroshot" not in ok
    failed = [r for r in rows if r["status"] == "non-finite"]
    assert len(failed) == 1 and "knn_accuracy" not in failed[0]
    chosen = {(e["attention"], e["learning_rate"]) for e in lr_sweep(rows) if e["chosen"]}
    assert chosen == {("sigmoid", 1e-3), ("softmax", 3e-3)}  # A failed seed rules 3e-3 out.
    from sigjax.evaluation import summarize

    only_sigmoid = [r for r in rows if r["attention"] == "sigmoid" and r["learning_rate"] == 1e-3]
    knn = next(e for e in summarize(only_sigmoid) if e["metric"] == "knn_accuracy")
    assert knn["n_seeds"] == 2 and knn["n_pairs"] == 0  # Seeds of the attention that ran.

    results = tmp_path / "results.md"
    text = report_study(
        read_records(record),
        results=results,
        name="zs",
        command="c",
        config_text="x",
        zeroshot=("pbmc68k_reduced", "scmark"),
    )
    assert "## Zero-shot study `zs`" in text and "Zero-shot: each run pretrains" in text
    assert "### scmark (36 cells scored, 2 seeds; sigmoid at lr 0.001, softmax at lr 0.003)" in text
    # kNN accuracy 0.705 ± 0.007 vs 0.625 ± 0.007: beyond the spread, sigmoid better in 2 of 2.
    assert "| knn_accuracy | 0.7050 ± 0.0071 | 0.6250 ± 0.0071 | +0.0800 |" in text
    assert "| yes | 2/2 | 0.9000 |" in text
    assert "<!-- study:zs -->" in results.read_text()


def test_zeroshot_grid_trains_scores_and_skips_finished_runs(tmp_path, monkeypatch, capsys):
    from configs import pretrain_pooled_tiny
    from eval import study

    folder, h5 = tmp_path / "archives", tmp_path / "h5"
    folder.mkdir()
    h5.mkdir()
    fake_packages.all_packages(folder, h5)
    fake_packages.pyplnmodels(folder, n_per_label=12)
    config = pretrain_pooled_tiny.get_config()
    assert config.train.eval_every == config.train.num_steps  # The corpus loss at the end.
    config.grid = {
        "name": "zs_tiny",
        "datasets": ("pooled",),
        "zeroshot": ("scmark", "zeisel"),
        "source": str(folder),
        "attentions": ("sigmoid", "softmax"),
        "learning_rates": (1e-3,),
        "seeds": (0,),
        "max_cells": 0,
        "workdir": str(tmp_path / "work"),
        "record": str(tmp_path / "record"),
        "results": str(tmp_path / "results.md"),
        "delete_checkpoints": True,
    }
    import ml_collections

    config.grid = ml_collections.ConfigDict(config.grid)
    config.data.path = str(folder)
    monkeypatch.setattr("eval.study.load_config", lambda _: config)
    study.main(["--config=tiny"])
    run = tmp_path / "record" / "pooled" / "softmax_lr0.001_seed0"
    scores = json.loads((run / "scores.json").read_text())
    assert np.isfinite(scores["val_loss"])
    assert [z["dataset"] for z in scores["zeroshot"]] == ["scmark", "zeisel"]
    assert "not embeddable" in scores["zeroshot"][1]["status"]
    assert (run / "zeroshot.json").is_file() and (run / "zeroshot.md").is_file()
    assert not (tmp_path / "work" / "pooled" / "softmax_lr0.001_seed0" / "checkpoints").exists()
    text = (tmp_path / "results.md").read_text()
    assert "### scmark (36 cells scored, 1 seeds; sigmoid at lr 0.001, softmax at lr 0.001)" in text
    assert "### zeisel" not in text  # No gene symbols: never embedded, so no table.
    assert "labelled sets embedded zero-shot: scmark, zeisel" in text
    capsys.readouterr()
    study.main(["--config=tiny"])  # Again: both runs finished, neither trains.
    assert capsys.readouterr().out.count("done (finished), skipping") == 2
