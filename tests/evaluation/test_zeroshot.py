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
