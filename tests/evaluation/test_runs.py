"""Run reading, stability summaries, comparison tables and study summaries on fabricated runs."""

import json
import math

import numpy as np
import pytest

from sigjax.evaluation import (
    chosen_rows,
    compare_runs,
    lr_sweep,
    read_metrics,
    results_markdown,
    same_rate_summary,
    stability_report,
    stability_summary,
    study_config,
    summarize,
    write_section,
)
from sigjax.evaluation._runs import running_median_ratio
from sigjax.evaluation._study import METRICS


def write_run(path, rows, scores=None):
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    if scores is not None:
        (path / "scores.json").write_text(json.dumps(scores))
    return path


GROUPS = ("block_0/attention", "block_0/mlp", "block_1/attention", "block_1/mlp", "embed", "head")


def fake_rows(n=5, spike_at=None, nan_at=None, blocks=True, frozen=(), slow=()):
    rows = []
    for i in range(1, n + 1):
        step = 10 * i
        g = 2.0 / i
        if step == spike_at:
            g = 8.0
        row = {
            "step": step,
            "train/loss": 3.0 - 0.1 * i,
            "train/grad_norm": g,
            "perf/step_time": 5.0 if i == 1 else 0.1 * i,
        }
        if blocks:
            row["grad_norm/block_0/attention"] = g / 2
            for k, group in enumerate(GROUPS):  # Healthy groups move by ~1e-3 per step.
                ratio = 1e-3 * (1 + 0.1 * k)
                scale = 1e-5 if group in frozen else 1e-2 if group in slow else 1.0
                row[f"update_ratio/{group}"] = ratio * scale
        if step == nan_at:
            row["train/loss"] = float("nan")
        if i % 2 == 0:
            row["val/loss"] = 2.5 - 0.1 * i
        rows.append(row)
    return rows


def test_read_metrics_merges_resumed_steps(tmp_path):
    rows = fake_rows(3)
    rows.append({"step": 20, "train/loss": 9.0})  # a resumed run re-logs step 20
    write_run(tmp_path / "r", rows)
    got = read_metrics(tmp_path / "r")
    assert [r["step"] for r in got] == [10, 20, 30]
    assert got[1]["train/loss"] == 9.0
    assert got[1]["train/grad_norm"] == 1.0  # other keys of the first row survive


def test_read_metrics_reads_a_gzipped_record(tmp_path):
    import gzip

    write_run(tmp_path / "r", fake_rows(3))
    raw = (tmp_path / "r" / "metrics.jsonl").read_bytes()
    (tmp_path / "r" / "metrics.jsonl").unlink()
    (tmp_path / "r" / "metrics.jsonl.gz").write_bytes(gzip.compress(raw))
    assert read_metrics(tmp_path / "r") == fake_rows(3)


def test_read_metrics_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path)


def test_stability_summary(tmp_path):
    run = write_run(tmp_path / "spiky", fake_rows(5, spike_at=30, nan_at=40))
    s = stability_summary(run)
    assert s["run"] == "spiky"
    assert s["steps"] == 50
    assert s["grad_norm_initial"] == 2.0
    assert s["grad_norm_max"] == 8.0
    assert s["max_over_initial"] == 4.0
    assert s["first_nonfinite_step"] == 40
    assert s["final_loss"] == pytest.approx(2.5)
    assert s["final_val_loss"] == pytest.approx(2.1)
    assert s["mean_step_time_s"] == pytest.approx(np.mean([0.2, 0.3, 0.4, 0.5]))  # first left out
    calm = stability_summary(write_run(tmp_path / "calm", fake_rows(5)))
    assert calm["first_nonfinite_step"] is None and calm["max_over_initial"] == 1.0
    assert calm["frozen"] == {} and list(calm["update_ratios"]) == list(GROUPS)
    assert calm["update_ratios"]["embed"] == pytest.approx(1.4e-3)
    old = stability_summary(write_run(tmp_path / "old", fake_rows(5, blocks=False)))
    assert old["frozen"] is None and old["update_ratios"] == {}  # Logged before the ratios.


def test_stability_summary_names_frozen_groups_from_the_last_rows(tmp_path):
    rows = fake_rows(30, frozen=("block_1/mlp",))
    s = stability_summary(write_run(tmp_path / "dead", rows))
    assert list(s["frozen"]) == ["block_1/mlp"]
    # Below the others' median (1.2e-3) and the ends' (1.45e-3): the smaller factor.
    assert s["frozen"]["block_1/mlp"] == pytest.approx(1.3e-8 / 1.45e-3)
    # Alive for 15 rows, then frozen: so over the last 20 rows (the default), not over all 30.
    late = fake_rows(30)
    for row, dead in zip(late[15:], rows[15:], strict=True):
        row.update({k: v for k, v in dead.items() if k.startswith("update_ratio/")})
    assert list(stability_summary(write_run(tmp_path / "late", late))["frozen"]) == ["block_1/mlp"]
    assert stability_summary(tmp_path / "late", last=30)["frozen"] == {}
    with pytest.raises(ValueError, match="last: got 0"):
        stability_summary(tmp_path / "late", last=0)


def test_stability_report_and_compare_write_files(tmp_path, capsys):
    a = write_run(
        tmp_path / "a", fake_rows(5), scores={"val_loss": 1.5, "nmi": 0.4, "cells": "val"}
    )
    b = write_run(tmp_path / "b", fake_rows(5, nan_at=20, blocks=False))
    c = write_run(tmp_path / "c", fake_rows(5, frozen=("block_0/mlp", "embed")))
    # 1e-2 x the others: not frozen (above 1e-3 x their median and 3e-3 x the ends'), but lagging.
    d = write_run(tmp_path / "d", fake_rows(5, slow=("block_1/attention",)))
    summaries = stability_report([a, b, c, d], tmp_path / "out")
    assert [s["first_nonfinite_step"] for s in summaries] == [None, 20, None, None]
    assert (tmp_path / "out" / "stability.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "out" / "stability.json").read_text())
    assert saved[1]["run"] == "b"
    assert list(saved[2]["frozen"]) == ["block_0/mlp", "embed"] and saved[2]["lagging"] == {}
    assert saved[3]["frozen"] == {} and list(saved[3]["lagging"]) == ["block_1/attention"]
    # 1.2e-5 over the median of the other five groups (1.3e-3).
    assert saved[3]["lagging"]["block_1/attention"] == pytest.approx(1.2e-5 / 1.3e-3)
    md = (tmp_path / "out" / "stability.md").read_text().split("\n\n")[0].splitlines()
    assert [h.strip() for h in md[0].split("|")[-3:-1]] == ["frozen", "lagging"]
    # Healthy: "none"; no ratios logged: empty; frozen or lagging: the groups by name.
    assert [line.split("|")[-3].strip() for line in md[2:]] == [
        "none",
        "",
        "block_0/mlp, embed",
        "none",
    ]
    assert [line.split("|")[-2].strip() for line in md[2:]] == [
        "none",
        "",
        "none",
        "block_1/attention",
    ]
    reported = capsys.readouterr().out
    warnings = [line for line in reported.splitlines() if "WARNING" in line]
    assert len(warnings) == 2 and warnings[0].startswith("WARNING c: frozen sub-blocks: ")
    assert "block_0/mlp (" in warnings[0] and "embed (" in warnings[0]
    assert warnings[1].startswith("WARNING d: lagging sub-blocks: block_1/attention (0.0092x)")
    table = compare_runs([a, b], tmp_path / "cmp", embed=False)
    lines = table.splitlines()
    assert lines[0].split("|")[1:-1] == [
        " run ",
        " final val/loss ",
        " best val/loss ",
        " final train/loss ",
        " val_loss ",
        " nmi ",
    ]
    assert lines[2] == "| a | 2.1 | 2.1 | 2.5 | 1.5 | 0.4 |"
    assert lines[3] == "| b | 2.1 | 2.1 | 2.5 |  |  |"
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 10_000
    assert (tmp_path / "cmp" / "compare.md").read_text().strip() == table
    printed = capsys.readouterr().out  # Each file written is named, as `score` does.
    for path in ("out/stability.png", "out/stability.md", "out/stability.json"):
        assert f"wrote {tmp_path / path}" in reported
    for path in ("cmp/compare.png", "cmp/compare.md"):
        assert f"wrote {tmp_path / path}" in printed


def test_summarize_and_results_markdown():
    rows = []
    for seed, (sig, soft) in enumerate([(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]):
        for attention, v in (("sigmoid", sig), ("softmax", soft)):
            rows.append(
                {
                    "dataset": "d",
                    "attention": attention,
                    "seed": seed,
                    "val_loss": v,
                    "nmi": v / 10,
                    "n_cells": 50,
                    "pca_hvg/nmi": 0.5,
                    "train_time_s": 3.0,
                }
            )
    summary = {s["metric"]: s for s in summarize(rows)}
    assert summary["val_loss"]["sigmoid_mean"] == 2.0
    assert summary["val_loss"]["sigmoid_std"] == pytest.approx(1.0)  # ddof=1
    assert summary["val_loss"]["softmax_std"] == 0.0
    assert summary["val_loss"]["rel_diff"] == 0.0
    assert summary["nmi"]["pca_hvg"] == 0.5 and summary["val_loss"]["pca_hvg"] is None
    assert summary["val_loss"]["n_seeds"] == 3
    assert math.isnan(summary["silhouette"]["sigmoid_mean"])  # not in the rows
    text = results_markdown(summarize(rows), rows, command="python -m eval study", config_text="x")
    assert summary["val_loss"]["sigmoid_wins"] == 1 and summary["val_loss"]["n_pairs"] == 3
    assert summary["nmi"]["sigmoid_wins"] == 1  # higher is better: only seed 2 (0.3 > 0.2)
    assert (
        "| val_loss | 2.0000 ± 1.0000 | 2.0000 ± 0.0000 | +0.0000 | +0.0% | no | 1/3 |  |" in text
    )
    assert "### d (50 cells scored, 3 seeds)" in text
    assert "`python -m eval study`" in text
    # The study records its own commit: this checkout's, or the one given.
    from sigjax._io import git_commit

    assert f"- Commit: `{git_commit() or 'unknown'}`" in text
    given = results_markdown([], [], command="c", config_text="x", commit="abc1234")
    assert "- Commit: `abc1234`" in given


def test_study_config_sets_only_seeds_data_and_attention():
    from configs import smoke

    base = smoke.get_config()
    c = study_config(base, "zeisel", "softmax", 2)
    assert (c.data.dataset, c.model.attention, c.seed, c.data.seed) == ("zeisel", "softmax", 2, 2)
    assert base.model.attention == "sigmoid" and base.data.dataset == "pbmc68k_reduced"
    c.model.attention = "sigmoid"
    c.data.dataset, c.seed, c.data.seed = base.data.dataset, base.seed, base.data.seed
    assert c.to_json() == base.to_json()


def write_grid_run(root, attention, lr, seed, grad_norms, ratio=1e-3):
    """A grid record: metrics.jsonl (one row per step) and the config.json fields it reads."""
    rows = []
    for step, g in enumerate(grad_norms, 1):
        row = {"step": step, "train/loss": 3.0, "train/grad_norm": g}
        for b in range(2):
            row[f"grad_norm/block_{b}/attention"] = g / 3
            row[f"grad_norm/block_{b}/mlp"] = g / 2
            row[f"update_ratio/block_{b}/attention"] = 1e-3
            row[f"update_ratio/block_{b}/mlp"] = ratio
        row["update_ratio/embed"] = 1e-3
        rows.append(row)
    path = write_run(root / f"{attention}_lr{lr:g}_seed{seed}", rows)
    config = {"seed": seed, "model": {"attention": attention}, "train": {"learning_rate": lr}}
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_running_median_ratio_flags_spikes_after_enough_history():
    g = np.array([5.0] * 3 + [1.0] * 12 + [30.0, 1.0, float("nan"), 2.0])
    r = running_median_ratio(g, window=50, min_history=10)
    assert np.isnan(r[:10]).all()  # Too little history: no verdict (the large first steps).
    assert r[15] == pytest.approx(30.0)  # Median of 3 x 5 and 12 x 1 is 1.
    assert np.isnan(r[17]) and r[18] == pytest.approx(2.0)  # NaN skipped, not in the history.
    assert running_median_ratio(np.ones(30), window=5, min_history=2)[-1] == 1.0


def test_stability_grid_table_regions_and_panels(tmp_path, capsys):
    calm = [1.0] * 40
    spiky = [1.0] * 30 + [12.0] + [1.0] * 9  # 12x its running median: unstable.
    runs = [
        write_grid_run(tmp_path, "sigmoid", 1e-3, 0, calm),
        write_grid_run(tmp_path, "sigmoid", 1e-3, 1, calm, ratio=1e-9),  # Stable but frozen.
        write_grid_run(tmp_path, "softmax", 1e-3, 0, calm),
        write_grid_run(tmp_path, "softmax", 1e-2, 0, spiky),
        write_grid_run(tmp_path, "softmax", 1e-2, 1, [*calm[:20], float("nan")]),
    ]
    summaries = stability_report(runs, tmp_path / "out")
    by = {s["run"]: s for s in summaries}
    assert by["sigmoid_lr0.001_seed0"]["stable"] is True
    assert by["sigmoid_lr0.001_seed0"]["mlp_update_ratio"] == pytest.approx(1e-3)
    frozen = by["sigmoid_lr0.001_seed1"]
    assert frozen["stable"] is True and frozen["mlp_update_ratio"] == pytest.approx(1e-9)
    assert list(frozen["frozen"]) == ["block_0/mlp", "block_1/mlp"]
    spike = by["softmax_lr0.01_seed0"]
    assert spike["stable"] is False and spike["max_over_running_median"] == pytest.approx(12.0)
    assert not spike["nonfinite"]
    nan = by["softmax_lr0.01_seed1"]
    assert nan["stable"] is False and nan["first_nonfinite_step"] == 21
    assert (nan["attention"], nan["learning_rate"], nan["seed"]) == ("softmax", 0.01, 1)
    text = (tmp_path / "out" / "stability.md").read_text()
    table, _, regions = text.partition("Stable runs per attention and learning rate:")
    header = table.splitlines()[0].split("|")[1:-1]
    assert [h.strip() for h in header[:5]] == ["run", "attention", "learning_rate", "seed", "steps"]
    assert "| softmax_lr0.01_seed0 | softmax | 0.01 | 0 | 40 |  | 12 | 12 | False |" in table
    assert "| sigmoid | 0.001 | 2/2 | 0 | 1 | 0 | none |" in regions
    assert "| softmax | 0.001 | 1/1 | 0 | 0 | 0 | none |" in regions
    assert (
        "| softmax | 0.01 | 0/2 | 0 | 0 | 0 | "
        "seed 0: 12x running median, seed 1: non-finite at step 21 |" in regions
    )
    assert "Stable runs per attention" in capsys.readouterr().out  # The tables are printed.
    assert (tmp_path / "out" / "stability.png").stat().st_size > 20_000


def test_stability_panels_one_per_attention_with_a_legend(tmp_path, monkeypatch):
    import sigjax.evaluation._runs as runs_module

    saved = []
    monkeypatch.setattr(runs_module, "save_png", lambda fig, *a, **k: saved.append(fig))
    runs = [
        write_grid_run(tmp_path, "sigmoid", 1e-3, 0, [1.0] * 12),
        write_grid_run(tmp_path, "softmax", 1e-3, 0, [1.0] * 12),
    ]
    stability_report(runs, tmp_path / "out")
    (fig,) = saved
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    # Row 0: every run; then one row per attention: per-block gradient norms, update ratios.
    assert titles == [
        "sigmoid: sigmoid_lr0.001_seed0",
        "sigmoid: sigmoid_lr0.001_seed0",
        "softmax: softmax_lr0.001_seed0",
        "softmax: softmax_lr0.001_seed0",
    ]
    grad_panel, ratio_panel = (ax for ax in fig.axes if ax.get_title().startswith("softmax"))
    assert grad_panel.get_ylabel() == "per-block gradient norm"
    labels = [t.get_text() for t in grad_panel.get_legend().get_texts()]
    assert labels == ["block_0/attention", "block_0/mlp", "block_1/attention", "block_1/mlp"]
    ratio_labels = [t.get_text() for t in ratio_panel.get_legend().get_texts()]
    assert ratio_labels[-1] == "embed" and len(ratio_panel.get_lines()) == 5


def sweep_row(attention, lr, seed, val_loss, status="finished", **scores):
    return {
        "dataset": "d",
        "attention": attention,
        "learning_rate": lr,
        "seed": seed,
        "status": status,
        "val_loss": val_loss,
        **scores,
    }


def test_lr_sweep_chooses_each_attention_rate_on_validation_loss():
    rows = [
        sweep_row("sigmoid", 1e-3, 0, 2.0, nmi=0.5),
        sweep_row("sigmoid", 1e-3, 1, 2.2, nmi=0.6),
        sweep_row("sigmoid", 3e-3, 0, 1.5, nmi=0.9),
        sweep_row("sigmoid", 3e-3, 1, float("nan"), status="non-finite"),  # Diverged: out.
        sweep_row("sigmoid", 3e-4, 0, 1.0, nmi=0.9),  # Fewer seeds than the others: out.
        sweep_row("softmax", 1e-3, 0, 3.0, nmi=0.1),
        sweep_row("softmax", 1e-3, 1, 3.0, nmi=0.1),
        sweep_row("softmax", 3e-3, 0, 2.5, nmi=0.2),
        sweep_row("softmax", 3e-3, 1, 2.5, nmi=0.3),
    ]
    sweep = lr_sweep(rows)
    assert [(e["attention"], e["learning_rate"]) for e in sweep] == [
        ("sigmoid", 3e-4),
        ("sigmoid", 1e-3),
        ("sigmoid", 3e-3),
        ("softmax", 1e-3),
        ("softmax", 3e-3),
    ]
    assert [e["chosen"] for e in sweep] == [False, True, False, False, True]
    assert sweep[2]["n_failed"] == 1 and sweep[2]["val_loss_mean"] == 1.5
    assert sweep[1]["val_loss_mean"] == pytest.approx(2.1)
    chosen = chosen_rows(rows, sweep)
    assert {(r["attention"], r["learning_rate"]) for r in chosen} == {
        ("sigmoid", 1e-3),
        ("softmax", 3e-3),
    }
    summary = {s["metric"]: s for s in summarize(chosen)}
    # NMI: sigmoid 0.55 ± 0.071, softmax 0.25 ± 0.071: the gap (0.3) exceeds the spread (0.14).
    assert summary["nmi"]["beyond_spread"] is True and summary["nmi"]["sigmoid_wins"] == 2
    # val_loss: 2.1 ± 0.14 vs 2.5 ± 0: the gap (0.4) exceeds 0.14 too; lower is better.
    assert summary["val_loss"]["beyond_spread"] is True
    assert summary["val_loss"]["sigmoid_wins"] == 2
    one_seed = summarize([r for r in chosen if r["seed"] == 0])
    assert {s["beyond_spread"] for s in one_seed} == {None}  # One seed: no spread to compare.
    text = results_markdown(summarize(chosen), rows, command="c", config_text="x", sweep=sweep)
    assert "| d | sigmoid | 0.001 | 2 | 0 | 2.1000 ± 0.1414 | * |" in text
    assert "| d | sigmoid | 0.003 | 2 | 1 | 1.5000 ± 0.0000 |  |" in text
    assert (
        "Chosen at the edge of the sweep (a wider sweep might do better): d softmax (0.003)."
        in (text)
    )  # sigmoid's 1e-3 lies between 3e-4 and 3e-3.
    assert "### d (None cells scored, 2 seeds; sigmoid at lr 0.001, softmax at lr 0.003)" in text
    assert "| nmi | 0.5500 ± 0.0707 | 0.2500 ± 0.0707 | +0.3000 | +120.0% | yes | 2/2 |  |" in text
    assert "| d | sigmoid | 0.003 | 1 | non-finite |" in text  # Every run in the per-run table.
    assert "### Every learning rate" not in text  # Only when asked for.


def test_same_rate_summary_compares_the_attentions_at_each_rate():
    rows = [
        sweep_row("sigmoid", 1e-3, 0, 2.0, nmi=0.5, **{"pca_hvg/nmi": 0.4}),
        sweep_row("sigmoid", 1e-3, 1, 2.2, nmi=0.6, **{"pca_hvg/nmi": 0.4}),
        sweep_row("softmax", 1e-3, 0, 3.0, nmi=0.1, **{"pca_hvg/nmi": 0.4}),
        sweep_row("softmax", 1e-3, 1, 3.0, nmi=0.1, **{"pca_hvg/nmi": 0.4}),
        sweep_row("sigmoid", 3e-3, 0, 1.5, nmi=0.2),
        sweep_row("sigmoid", 3e-3, 1, 1.7, nmi=0.4),
        sweep_row("softmax", 3e-3, 0, 1.6, nmi=0.3),
        sweep_row("softmax", 3e-3, 1, 1.6, nmi=0.3),
        sweep_row("sigmoid", 1e-2, 0, 1.0, nmi=0.9),  # No softmax at 1e-2: no comparison.
    ]
    same = same_rate_summary(rows)
    assert sorted({e["learning_rate"] for e in same}) == [1e-3, 3e-3]
    nmi = {e["learning_rate"]: e for e in same if e["metric"] == "nmi"}
    # 1e-3: 0.55 ± 0.07 vs 0.1 ± 0: beyond the spread, sigmoid better in both seeds.
    assert nmi[1e-3]["beyond_spread"] is True and nmi[1e-3]["sigmoid_wins"] == 2
    # 3e-3: 0.3 ± 0.14 vs 0.3 ± 0: equal means, inside the spread; one seed each way.
    assert nmi[3e-3]["beyond_spread"] is False and nmi[3e-3]["sigmoid_wins"] == 1
    text = results_markdown([], rows, command="c", config_text="x", same_rate=same)
    lines = text.split("### Every learning rate")[1].splitlines()
    row = next(x for x in lines if x.startswith("| d | 0.001 |")).split(" | ")
    assert row[METRICS.index("val_loss") + 2] == "2.100 / 3.000 † (2/2)"
    assert row[METRICS.index("nmi") + 2] == "0.550 / 0.100 † (2/2)"
    row = next(x for x in lines if x.startswith("| d | 0.003 |")).split(" | ")
    assert row[METRICS.index("nmi") + 2] == "0.300 / 0.300 (1/2)"
    assert not any(x.startswith("| d | 0.01 |") for x in lines)
    pca = next(x for x in lines if x.startswith("| d | PCA-HVG |")).split(" | ")
    assert pca[METRICS.index("nmi") + 2] == "0.400"


def test_write_section_replaces_only_its_own_markers(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("# Results\n\nHand-written reading: see `<!-- study:base -->` below.\n")
    write_section(path, "base", "## Study base\n\nfirst\n")
    write_section(path, "other", "## Other\n")
    new = write_section(path, "base", "## Study base\n\nsecond\n")
    assert new == (
        "# Results\n\nHand-written reading: see `<!-- study:base -->` below.\n\n"
        "<!-- study:base -->\n## Study base\n\nsecond\n<!-- /study:base -->\n\n"
        "<!-- study:other -->\n## Other\n<!-- /study:other -->\n"
    )
    assert path.read_text() == new
    fresh = write_section(tmp_path / "new" / "r.md", "x", "t")
    assert fresh == "<!-- study:x -->\nt\n<!-- /study:x -->\n"
    path.write_text("<!-- study:base -->\nno end\n")
    with pytest.raises(ValueError, match="no <!-- /study:base -->"):
        write_section(path, "base", "t")
    with pytest.raises(ValueError, match="name: got 'a b'"):
        write_section(path, "a b", "t")
