"""The sigmoid-vs-softmax study: data sets x attentions x learning rates x seeds, summarised.

Every run of one (data set, seed) trains from the same config with the same seed (`config.seed`:
parameters, masks; `config.data.seed`: train/validation split and batch order), so sigmoid and
softmax see identical initial parameters, cells, batches and masks and differ only in the
attention (and in the learning rate, each at its own best). Each run is evaluated with
`evaluate_run(cells="val")`: validation loss and embedding scores on its held-out cells (never
trained on), with the PCA-of-HVG baseline scored on the same cells. Runs and their records are
those of `sigjax.evaluation._grid` (resume: finished runs are skipped); the tables and plots are
made from the records alone (`read_records`).

Learning rate: each (data set, attention) is reported at the learning rate with the lowest mean
validation loss over seeds (`lr_sweep`). Validation loss, not the embedding scores: it is the
label-free pretraining objective on held-out cells, so the choice uses no cell-type label and the
scores reported at the chosen rate are not tuned on the labels they are scored against (choosing
on kNN accuracy or NMI would select on the test metric and flatter both attentions). It is also
how a foundation model is tuned in practice, where the downstream labels are unknown. Only rates
at which every seed finished with a finite loss, and with as many seeds as the best-covered rate,
are eligible: a rate that diverges in one seed is not a usable setting, and means over different
seed sets are not comparable.
"""

import copy
import datetime
import json
import math
import os
import pathlib
import re
import textwrap

import numpy as np

from sigjax.evaluation._grid import FINISHED, grid_cells, run_cell, shard_cells
from sigjax.evaluation._score import SCORE_NAMES
from sigjax.model import ATTENTIONS

METRICS = ("val_loss", "knn_accuracy", *SCORE_NAMES)
LOWER_IS_BETTER = ("val_loss",)
_METHOD = (
    "Each data set: sigmoid and softmax trained from the same config with the same seeds "
    "(parameters, masks, train/validation split and batch order identical), one pair per seed; "
    "each attention at its own learning rate, the one with the lowest mean validation loss over "
    "seeds (label-free, so the scores below are not tuned on the labels; see the sweep table). "
    "`val_loss`: the training objective on the held-out cells (lower is better). Embedding "
    "scores (higher is better) on the held-out cells, which no run trained on, against their "
    "cell-type labels; kNN accuracy predicts them from the training cells' embeddings; "
    "definitions in `sigjax/evaluation/_score.py`. Mean ± sample std over seeds; diff = sigmoid − "
    "softmax of the means, rel. diff = diff / |softmax| (large for scores near 0). `> spread`: "
    "yes when |diff| exceeds the sum of the two seed stds (the mean ± std ranges do not overlap). "
    "`sigmoid better`: seeds in which sigmoid had the lower val_loss / higher score, of the seed "
    "pairs. `PCA-HVG`: PCA of log-normalised highly variable genes on the same cells (mean over "
    "the seeds' splits). `<pooling>_pool/*`: the same model's embedding pooled the other way "
    "(pooling acts only at embedding time). Train and score times are wall times of the run's "
    "last process, data loading and compilation included; `r`: it resumed from a checkpoint "
    "(the time is of the part after it)."
)


_ZEROSHOT_METHOD = (
    "Zero-shot: each run pretrains on the pooled corpus (data set `pooled`, no labels) and then "
    "embeds each labelled set below, which it never saw, with no training on it "
    "(`sigjax.evaluation.zeroshot`: genes matched by upper-case symbol through the run's "
    "vocabulary). Sigmoid and softmax runs of a seed share the config, seed, corpus split, batch "
    "order and masks; each attention is reported at its own learning rate, the one with the lowest "
    "mean validation loss over seeds on the corpus' held-out cells (label-free: the same rate for "
    "every labelled set; `val_loss` in every table is that corpus loss). Scores (higher is "
    "better) on all cells of the set against their cell-type labels, kNN accuracy by 5-fold "
    "cross-validation; definitions in `sigjax/evaluation/_score.py`. Mean ± sample std over "
    "seeds; diff = sigmoid − softmax of the means, rel. diff = diff / |softmax|. `> spread`: yes "
    "when |diff| exceeds the sum of the two seed stds. `sigmoid better`: seeds in which sigmoid "
    "had the lower val_loss / higher score, of the seed pairs. `PCA-HVG`: PCA of the set's own "
    "log-normalised highly variable genes, same cells. Train and score times are wall times of "
    "the run's last process; `r`: it resumed from a checkpoint."
)


def study_config(base, dataset: str, attention: str, seed: int):
    """`base` (a training ConfigDict) for one run: data set, attention and seeds set."""
    config = copy.deepcopy(base)
    config.data.dataset = dataset
    config.data.path = ""
    config.model.attention = attention
    config.seed = seed
    config.data.seed = seed
    return config


def run_study(
    base,
    out,
    *,
    datasets,
    seeds=(0, 1, 2),
    attentions=ATTENTIONS,
    learning_rates=None,
    max_cells: int | None = None,
    extra_poolings: tuple[str, ...] | None = None,
    record=None,
    shard: str | None = None,
    command: str = "",
    delete_checkpoints: bool = False,
    zeroshot: tuple[str, ...] | None = None,
    source=None,
) -> list[dict]:
    """Trains and scores every (data set, learning rate, attention, seed); skips finished runs.

    Args:
      base: training config shared by all runs (e.g. configs/study_base.py); its `grid` section,
        if any, is left out of the runs' configs.
      out: work directory root; runs train in OUT/<dataset>/<attention>_lr<lr>_seed<seed>.
      datasets: data set names (see `sigjax.data.DATASETS`).
      seeds: seeds; each trains every attention and learning rate.
      attentions: attentions compared.
      learning_rates: the sweep; None = (base.train.learning_rate,).
      max_cells: score at most this many held-out cells per run (fixed subset), None = all.
      extra_poolings: poolings also scored ("cls", "mean"), under "<pooling>_pool/<score>";
        None = the one the config does not use (pooling acts only at embedding time).
      record: where the runs' records go (default: OUT, beside the checkpoints).
      shard: "i/n": only every n-th run from the i-th (one process per GPU); None = all.
      command: the command line, recorded with each run.
      delete_checkpoints: delete a run's checkpoints once it is scored and recorded.
      zeroshot: labelled sets to embed zero-shot (a pooled pretraining grid, e.g.
        configs/zeroshot_grid.py): each run is then scored by `zeroshot_run_scores` instead of on
        its own held-out cells, its zeroshot.json/.md beside its record; None = the usual study.
      source: folder of the labelled sets' package archives (zero-shot); None = the cache.

    Returns:
      One row per run (`read_record`): the cell's fields ("dataset", "attention",
      "learning_rate", "seed"), "status", "train_time_s", "commit", "device", "started", "ended",
      and when finished "val_loss", "n_cells", the scores, "<pooling>_pool/<score>" and
      "pca_hvg/<score>" (zero-shot: "val_loss" and "zeroshot", see `zeroshot_rows`).

    Raises:
      ValueError: from training (a bad config stops the study; rerun resumes).
    """
    from sigjax.evaluation._evaluate import evaluate_run

    lrs = learning_rates or (float(base.train.learning_rate),)
    cells = shard_cells(grid_cells(datasets, attentions, lrs, seeds), shard)
    if extra_poolings is None:
        extra_poolings = ("cls" if base.model.pooling == "mean" else "mean",)

    record = out if record is None else record

    def score(workdir) -> dict:
        if zeroshot:  # Zero-shot on the labelled sets; the files go beside the run's record.
            beside = pathlib.Path(record) / pathlib.Path(workdir).relative_to(out)
            return zeroshot_run_scores(
                workdir, zeroshot, out=beside, source=source, max_cells=max_cells
            )
        return evaluate_run(
            workdir,
            cells="val",
            max_cells=max_cells,
            baseline=True,
            extra_poolings=tuple(extra_poolings),
            write=False,
        )

    return [
        run_cell(
            base,
            c,
            out,
            record,
            score=score,
            command=command,
            delete_checkpoints=delete_checkpoints,
        )
        for c in cells
    ]


def zeroshot_run_scores(workdir, datasets, *, out, source=None, max_cells=None) -> dict:
    """A pooled pretraining run's scores for a zero-shot grid: `zeroshot` of each labelled set,
    whose zeroshot.json/.md go to `out`, as `zeroshot_record_scores`."""
    from sigjax.evaluation._zeroshot import zeroshot as embed_zeroshot

    result = embed_zeroshot(workdir, datasets, source=source, max_cells=max_cells, out=out)
    return zeroshot_record_scores(workdir, result)


def zeroshot_record_scores(run_dir, result: dict) -> dict:
    """scores.json of a zero-shot grid run: its final validation loss on the corpus' held-out
    cells (the last "val/loss" of run_dir's metrics; the loop evaluates at its last step) and the
    rows of its `zeroshot` result.

    Args:
      run_dir: the run's work directory or record (metrics.jsonl or metrics.jsonl.gz).
      result: what `zeroshot` returned (or wrote to zeroshot.json) for the run.

    Returns:
      {"val_loss" (NaN when never evaluated), "zeroshot": the rows, "zeroshot_seconds"}.
    """
    from sigjax.training import read_metrics

    losses = [r["val/loss"] for r in read_metrics(run_dir) if "val/loss" in r]
    return {
        "val_loss": float(losses[-1]) if losses else float("nan"),
        "zeroshot": result["rows"],
        "zeroshot_seconds": result.get("seconds", {}),
    }


def zeroshot_rows(rows: list[dict], datasets) -> list[dict]:
    """A zero-shot grid's records as study rows: one row per run and labelled set, its
    "dataset" the labelled set, its scores the run's embedding of it ("pca_hvg/<score>": the
    baseline), "n_cells" the cells embedded, "val_loss" the run's corpus loss (the same for each
    set, so `lr_sweep` chooses one rate per attention for every set). A run that did not finish
    (non-finite) gives a row without scores for each set, so its rate counts as failed. Sets no
    run could embed (no gene symbols) are left out.

    Args:
      rows: `read_records` of a zero-shot grid.
      datasets: the grid's labelled sets, in table order.

    Returns:
      Study rows (`summarize`, `report_study`).
    """
    embedded = {z["dataset"] for r in rows for z in r.get("zeroshot", ()) if "sigjax" in z}
    out = []
    for name in (d for d in datasets if d in embedded):
        for r in rows:
            row = {k: v for k, v in r.items() if k not in ("zeroshot", "zeroshot_seconds")}
            row["dataset"] = name
            found = [z for z in r.get("zeroshot", ()) if z["dataset"] == name and "sigjax" in z]
            if found:
                z = found[0]
                row["n_cells"] = z["cells"]
                row.update({k: v for k, v in z["sigjax"].items() if k in METRICS})
                row.update({f"pca_hvg/{k}": v for k, v in z["pca_hvg"].items()})
            elif row.get("status") == FINISHED:
                continue  # Finished, but this set was not embedded (e.g. none of its genes).
            out.append(row)
    return out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _lr_key(lr):
    return (lr is None, lr or 0.0)


def lr_sweep(rows: list[dict]) -> list[dict]:
    """The learning-rate sweep per (data set, attention), and the rate each is reported at.

    The chosen rate has the lowest mean validation loss over seeds among the eligible ones: every
    run at that rate finished with a finite val_loss, and it has as many runs as the rate with the
    most (the module docstring says why validation loss). Rows without "learning_rate" (older
    studies) form one rate, None.

    Args:
      rows: study rows (`run_study`, `read_records`).

    Returns:
      One dict per (dataset, attention, learning_rate), rates ascending: {"dataset", "attention",
      "learning_rate", "n_runs", "n_failed" (non-finite or unfinished), "val_loss_mean",
      "val_loss_std" (ddof=1; 0 with one run), "chosen" (bool)}.
    """
    out = []
    for dataset, attention in dict.fromkeys((r["dataset"], r["attention"]) for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset and r["attention"] == attention]
        entries = []
        for lr in sorted(dict.fromkeys(r.get("learning_rate") for r in mine), key=_lr_key):
            group = [r for r in mine if r.get("learning_rate") == lr]
            good = [
                r["val_loss"]
                for r in group
                if r.get("status", FINISHED) == FINISHED and _finite(r.get("val_loss"))
            ]
            v = np.array(good, np.float64)
            entries.append(
                {
                    "dataset": dataset,
                    "attention": attention,
                    "learning_rate": lr,
                    "n_runs": len(group),
                    "n_failed": len(group) - len(good),
                    "val_loss_mean": float(v.mean()) if len(v) else float("nan"),
                    "val_loss_std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                    "chosen": False,
                }
            )
        most = max(e["n_runs"] for e in entries)
        eligible = [e for e in entries if e["n_failed"] == 0 and e["n_runs"] == most]
        if eligible:
            min(eligible, key=lambda e: e["val_loss_mean"])["chosen"] = True
        out += entries
    return out


def chosen_rows(rows: list[dict], sweep: list[dict]) -> list[dict]:
    """The rows at each (data set, attention)'s chosen learning rate (`lr_sweep`)."""
    chosen = {(e["dataset"], e["attention"], e["learning_rate"]) for e in sweep if e["chosen"]}
    return [r for r in rows if (r["dataset"], r["attention"], r.get("learning_rate")) in chosen]


def beyond_spread(mean_a: float, std_a: float, mean_b: float, std_b: float) -> bool:
    """Whether two means over seeds differ by more than the sum of their standard deviations,
    i.e. their mean ± std ranges do not overlap: the study's (and zero-shot summary's) rule for
    calling a difference larger than the seed spread."""
    return bool(abs(mean_a - mean_b) > std_a + std_b)


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds, and the differences, per data set and metric.

    `std` is the sample standard deviation (ddof=1; 0 with one seed). `rel_diff` is
    (mean_sigmoid - mean_softmax) / |mean_softmax|: for val_loss negative favours sigmoid, for the
    scores positive does. `beyond_spread` is True when |mean_sigmoid - mean_softmax| exceeds
    std_sigmoid + std_softmax (their mean ± std ranges do not overlap), None with fewer than two
    seeds of either. `pca_hvg` is the baseline's score for the same metric (mean over the rows'
    cell sets). Metrics: METRICS, then any "<pooling>_pool/<score>" and
    "<readout>_readout/<score>" in the rows. Pass the rows of
    one learning rate per attention (`chosen_rows`).

    Args:
      rows: study rows.

    Returns:
      One dict per (dataset, metric): {"dataset", "metric", "n_seeds", "sigmoid_mean",
      "sigmoid_std", "softmax_mean", "softmax_std", "rel_diff", "beyond_spread", "sigmoid_wins",
      "n_pairs", "pca_hvg"}; sigmoid_wins counts the seeds (of n_pairs with both runs) in which
      sigmoid had the lower val_loss or the higher score.
    """
    out = []
    extra = [
        k
        for r in rows
        for k in r
        if any(k.endswith(f"_{kind}/" + k.rsplit("/", 1)[-1]) for kind in ("pool", "readout"))
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for metric in (*METRICS, *dict.fromkeys(extra)):
            entry = {"dataset": dataset, "metric": metric}
            counts = []
            for attention in ATTENTIONS:
                v = np.array(
                    [
                        r[metric]
                        for r in rows
                        if r["dataset"] == dataset and r["attention"] == attention and metric in r
                    ],
                    np.float64,
                )
                counts.append(len(v))
                entry[f"{attention}_mean"] = float(v.mean()) if len(v) else float("nan")
                entry[f"{attention}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            entry["n_seeds"] = max(counts)  # Of the attention with the most (one may have none).
            # Paired by seed: in how many seeds sigmoid beat softmax (lower loss, higher score).
            by_seed = {
                (r["attention"], r["seed"]): r[metric]
                for r in rows
                if r["dataset"] == dataset and metric in r
            }
            pairs = [
                (v, by_seed[("softmax", seed)])
                for (a, seed), v in by_seed.items()
                if a == "sigmoid" and ("softmax", seed) in by_seed
            ]
            lower_better = metric in LOWER_IS_BETTER
            entry["sigmoid_wins"] = sum((a < b) if lower_better else (a > b) for a, b in pairs)
            entry["n_pairs"] = len(pairs)
            soft, sig = entry["softmax_mean"], entry["sigmoid_mean"]
            entry["rel_diff"] = (sig - soft) / abs(soft) if soft else float("nan")
            entry["beyond_spread"] = (
                beyond_spread(sig, entry["sigmoid_std"], soft, entry["softmax_std"])
                if min(counts) > 1
                else None
            )
            key = "pca_hvg/" + metric.rsplit("/", 1)[-1]
            base = [r[key] for r in rows if r["dataset"] == dataset and key in r]
            entry["pca_hvg"] = float(np.mean(base)) if base else None
            out.append(entry)
    return out


def same_rate_summary(rows: list[dict]) -> list[dict]:
    """`summarize` at every learning rate both attentions ran, each entry with its
    "learning_rate": sigmoid against softmax at the same rate, so that a difference is not the
    label-free rate choice's doing. Rates ascending; rows without a rate form one, None.

    Args:
      rows: every run's row (all learning rates).

    Returns:
      `summarize`'s entries plus "learning_rate", for the rates with runs of both attentions.
    """
    out = []
    for lr in sorted(dict.fromkeys(r.get("learning_rate") for r in rows), key=_lr_key):
        at = [r for r in rows if r.get("learning_rate") == lr]
        for dataset in dict.fromkeys(r["dataset"] for r in at):
            mine = [r for r in at if r["dataset"] == dataset]
            if {r["attention"] for r in mine} >= set(ATTENTIONS):
                out += [{**e, "learning_rate": lr} for e in summarize(mine)]
    return out


def _device() -> str:
    from sigjax.evaluation._grid import device_text

    return device_text()


def _lr_text(lr) -> str:
    return "config's" if lr is None else f"{lr:g}"


def _at_edge(sweep: list[dict], entry: dict) -> bool:
    """Whether `entry`'s rate is the lowest or highest of its (data set, attention), of >= 2."""
    lrs = sorted(
        e["learning_rate"]
        for e in sweep
        if (e["dataset"], e["attention"]) == (entry["dataset"], entry["attention"])
        and e["learning_rate"] is not None
    )
    return len(lrs) > 1 and entry["learning_rate"] in (lrs[0], lrs[-1])


def _spread_text(flag) -> str:
    return "" if flag is None else ("yes" if flag else "no")


def results_markdown(
    summary: list[dict],
    rows: list[dict],
    *,
    command: str,
    config_text: str,
    commit: str | None = None,
    sweep: list[dict] | None = None,
    title: str = "Sigmoid vs softmax attention: masked-expression pretraining and cell embeddings",
    plots: tuple[str, ...] = (),
    same_rate: list[dict] | None = None,
    method: str | None = None,
) -> str:
    """A study's section of docs/results.md: provenance, setup, sweep, tables, per-run numbers.

    Args:
      summary: `summarize` of the rows at the chosen learning rates.
      rows: every run's row (all learning rates), for the per-run table and provenance.
      command: the command that ran the study.
      config_text: the shared setup, printed verbatim.
      commit: the commit of the code that wrote the table; default: this source tree's
        (`git rev-parse HEAD`, "+dirty" with uncommitted changes, "unknown" outside git). Each
        run's own commit is in the per-run table.
      sweep: `lr_sweep(rows)`; None leaves the sweep table out.
      title: the section heading.
      plots: image paths (relative to the markdown file) shown under the tables.
      same_rate: `same_rate_summary(rows)`; None leaves the same-rate table out.
      method: the paragraph on how the runs were made and scored; default: the study's.

    Returns:
      The markdown text (headings from level 2).
    """
    from sigjax._io import git_commit

    commit = commit or git_commit() or "unknown"
    dates = sorted(r[k] for r in rows for k in ("started", "ended") if r.get(k))
    devices = sorted({r["device"] for r in rows if r.get("device")}) or [_device()]
    run_commits = sorted({r["commit"] for r in rows if r.get("commit")})
    lines = [
        f"## {title}",
        "",
        f"- Date: {datetime.date.today().isoformat()}"
        + (f" (runs from {dates[0]} to {dates[-1]})" if dates else ""),
        *(f"- Device: {d}" for d in devices),
        f"- Command: `{command}`",
        f"- Commit: `{commit}`"
        + (f" (runs: {', '.join(f'`{c}`' for c in run_commits)})" if run_commits else ""),
        "",
        *textwrap.wrap(method or _METHOD, 100),
        "",
        "Setup (shared by every run):",
        "",
        "```",
        config_text.strip(),
        "```",
        "",
    ]
    if sweep:
        lines += [
            "### Learning rates (validation loss, mean ± std over seeds; * = chosen)",
            "",
            "| data set | attention | learning rate | runs | failed | val_loss | chosen |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in sweep:
            lines.append(
                f"| {e['dataset']} | {e['attention']} | {_lr_text(e['learning_rate'])} "
                f"| {e['n_runs']} | {e['n_failed']} "
                f"| {e['val_loss_mean']:.4f} ± {e['val_loss_std']:.4f} "
                f"| {'*' if e['chosen'] else ''} |"
            )
        lines.append("")
        edge = [
            f"{e['dataset']} {e['attention']} ({_lr_text(e['learning_rate'])})"
            for e in sweep
            if e["chosen"] and _at_edge(sweep, e)
        ]
        if edge:
            lines += [
                *textwrap.wrap(
                    "Chosen at the edge of the sweep (a wider sweep might do better): "
                    + ", ".join(edge)
                    + ".",
                    100,
                ),
                "",
            ]
    chosen = {
        (e["dataset"], e["attention"]): e["learning_rate"] for e in sweep or () if e["chosen"]
    }
    for dataset in dict.fromkeys(s["dataset"] for s in summary):
        n_cells = next((r.get("n_cells") for r in rows if r["dataset"] == dataset), None)
        n = next(s["n_seeds"] for s in summary if s["dataset"] == dataset)
        at = ", ".join(
            f"{a} at lr {_lr_text(chosen[(dataset, a)])}"
            for a in ATTENTIONS
            if (dataset, a) in chosen
        )
        lines += [
            f"### {dataset} ({n_cells} cells scored, {n} seeds{'; ' + at if at else ''})",
            "",
            "| metric | sigmoid | softmax | diff | rel. diff | > spread | sigmoid better "
            "| PCA-HVG |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in summary:
            if s["dataset"] != dataset or not (
                _finite(s["sigmoid_mean"]) or _finite(s["softmax_mean"])
            ):
                continue  # A metric no run has (e.g. an older run's): no row.
            base = "" if s["pca_hvg"] is None else f"{s['pca_hvg']:.4f}"
            lines.append(
                f"| {s['metric']} | {s['sigmoid_mean']:.4f} ± {s['sigmoid_std']:.4f} "
                f"| {s['softmax_mean']:.4f} ± {s['softmax_std']:.4f} "
                f"| {s['sigmoid_mean'] - s['softmax_mean']:+.4f} | {s['rel_diff']:+.1%} "
                f"| {_spread_text(s['beyond_spread'])} "
                f"| {s['sigmoid_wins']}/{s['n_pairs']} | {base} |"
            )
        lines.append("")
    if same_rate:
        lines += _same_rate_lines(same_rate)
    lines += [f"![{pathlib.Path(p).stem}]({p})" for p in plots] + ([""] if plots else [])
    lines += [
        "### Per run",
        "",
        "| data set | attention | lr | seed | status | train (s) | score (s) | commit | ended | "
        + " | ".join(METRICS)
        + " |",
        "|" + "---|" * (9 + len(METRICS)),
    ]
    for r in rows:
        t, s = r.get("train_time_s"), r.get("score_time_s")  # No score time in older records.
        lines.append(
            f"| {r['dataset']} | {r['attention']} | {_lr_text(r.get('learning_rate'))} "
            f"| {r['seed']} | {r.get('status', '')} | "
            + ("" if t is None else f"{t:.0f}" + (" r" if r.get("resumed") else ""))
            + " | "
            + ("" if s is None else f"{s:.0f}")
            + f" | {r.get('commit', '')} | {r.get('ended', '')} | "
            + " | ".join(f"{r[m]:.4f}" if _finite(r.get(m)) else "" for m in METRICS)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _same_rate_lines(same_rate: list[dict]) -> list[str]:
    """The same-rate table: per data set and rate, sigmoid / softmax means of each of METRICS,
    "†" where the difference exceeds the seed spread, and the PCA-HVG row."""
    lines = [
        "### Every learning rate: sigmoid / softmax at the same rate (mean over seeds)",
        "",
        *textwrap.wrap(
            "Each cell: sigmoid / softmax, mean over seeds; † = the difference exceeds the sum of "
            "the two seed stds; (k/n) = seeds in which sigmoid was better (lower val_loss, higher "
            "score). PCA-HVG: the baseline on the same cells.",
            100,
        ),
        "",
        "| data set | lr | " + " | ".join(METRICS) + " |",
        "|" + "---|" * (2 + len(METRICS)),
    ]
    by = {(e["dataset"], e["learning_rate"], e["metric"]): e for e in same_rate}
    for dataset in dict.fromkeys(e["dataset"] for e in same_rate):
        rates = sorted(
            dict.fromkeys(e["learning_rate"] for e in same_rate if e["dataset"] == dataset),
            key=_lr_key,
        )
        for lr in rates:
            cells = []
            for m in METRICS:
                e = by.get((dataset, lr, m))
                if e is None or not (_finite(e["sigmoid_mean"]) and _finite(e["softmax_mean"])):
                    cells.append("")
                    continue
                mark = " †" if e["beyond_spread"] else ""
                cells.append(
                    f"{e['sigmoid_mean']:.3f} / {e['softmax_mean']:.3f}{mark} "
                    f"({e['sigmoid_wins']}/{e['n_pairs']})"
                )
            lines.append(f"| {dataset} | {_lr_text(lr)} | " + " | ".join(cells) + " |")
        base = []
        for m in METRICS:
            e = by.get((dataset, rates[0], m))
            base.append("" if e is None or e["pca_hvg"] is None else f"{e['pca_hvg']:.3f}")
        lines.append(f"| {dataset} | PCA-HVG | " + " | ".join(base) + " |")
    return lines + [""]


def write_section(path, name: str, text: str) -> str:
    """Puts `text` into the markdown file between `<!-- study:NAME -->` and
    `<!-- /study:NAME -->` lines, replacing what was there; a file without them gets them (and the
    text) appended; a missing file is created. The rest of the file is kept as it was. A marker
    counts only on a line of its own, so prose that quotes one is left alone.

    Args:
      path: the markdown file (e.g. docs/results.md).
      name: the section's name (letters, digits, "_", "-", ".").
      text: the section's markdown.

    Returns:
      The whole new file.

    Raises:
      ValueError: a name with other characters, or a file with a start marker and no end marker
        after it.
    """
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise ValueError(f"name: got {name!r}, expected letters, digits, '_', '-' or '.'")
    from sigjax._io import atomic_write

    path = pathlib.Path(path)
    begin, end = f"<!-- study:{name} -->", f"<!-- /study:{name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    # Markers count only on a line of their own: prose may quote them.
    first = re.search(f"^{re.escape(begin)}$", old, re.M)
    if first is None:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"
    else:
        last = re.compile(f"^{re.escape(end)}$", re.M).search(old, first.end())
        if last is None:
            raise ValueError(
                f"{path}: has {begin} but no {end} after it; expected both markers (fix the file "
                "by hand: the text between them is replaced)"
            )
        new = old[: first.start()] + block + old[last.end() :]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, new)
    return new


def study_plots(rows: list[dict], sweep: list[dict], summary: list[dict], out) -> list[str]:
    """OUT/lr_sweep.png (validation loss vs learning rate per attention, mean ± std over seeds,
    one panel per data set) and OUT/scores.png (each metric at the chosen rates: sigmoid,
    softmax and PCA-HVG, mean ± std, one panel per data set).

    Returns:
      The paths written.
    """
    from sigjax.evaluation._runs import _plt

    plt = _plt()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    written = []
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for attention in ATTENTIONS:
            es = [
                e
                for e in sweep
                if e["dataset"] == dataset
                and e["attention"] == attention
                and e["learning_rate"] is not None
            ]
            if not es:
                continue
            x = [e["learning_rate"] for e in es]
            line = ax.errorbar(
                x,
                [e["val_loss_mean"] for e in es],
                yerr=[e["val_loss_std"] for e in es],
                marker="o",
                capsize=3,
                label=attention,
            )
            for e in es:
                if e["chosen"]:
                    ax.plot(
                        e["learning_rate"],
                        e["val_loss_mean"],
                        "*",
                        ms=14,
                        color=line[0].get_color(),
                    )
        ax.set(xscale="log", xlabel="peak learning rate", ylabel="validation loss", title=dataset)
        lrs = sorted({e["learning_rate"] for e in sweep if e["dataset"] == dataset} - {None})
        ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
        ax.minorticks_off()
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="* = chosen")
    fig.tight_layout()
    fig.savefig(out / "lr_sweep.png", dpi=110)
    plt.close(fig)
    written.append(str(out / "lr_sweep.png"))

    metrics = [m for m in METRICS if m not in LOWER_IS_BETTER]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        by = {s["metric"]: s for s in summary if s["dataset"] == dataset}
        x = np.arange(len(metrics))
        for k, attention in enumerate(ATTENTIONS):
            means = [by[m][f"{attention}_mean"] if m in by else np.nan for m in metrics]
            stds = [by[m][f"{attention}_std"] if m in by else np.nan for m in metrics]
            ax.bar(x + (k - 1) * 0.27, means, 0.27, yerr=stds, capsize=2, label=attention)
        pca = [
            by[m]["pca_hvg"] if m in by and by[m]["pca_hvg"] is not None else np.nan
            for m in metrics
        ]
        ax.bar(x + 0.27, pca, 0.27, color="grey", label="PCA-HVG")
        ax.set_xticks(x, metrics, rotation=30, ha="right", fontsize=8)
        ax.set(title=dataset, ylabel="score (held-out cells)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=110)
    plt.close(fig)
    written.append(str(out / "scores.png"))
    return written


def report_study(
    rows: list[dict],
    *,
    results,
    name: str,
    command: str,
    config_text: str,
    plots_dir=None,
    title: str | None = None,
    zeroshot: tuple[str, ...] | None = None,
) -> str:
    """The study's tables (and plots) from its rows: `lr_sweep`, `summarize` at the chosen rates,
    `results_markdown`, written between the section markers of `name` in `results`.

    Args:
      rows: every run's row (`read_records` of the record directory).
      results: the markdown file (e.g. docs/results.md).
      name: the section's name.
      command: the command that ran the study.
      config_text: the shared setup.
      plots_dir: where `study_plots` writes (linked from the section); None = no plots.
      title: the section heading (default: names the study).
      zeroshot: a zero-shot grid's labelled sets: `rows` are its records, reported per set
        (`zeroshot_rows`) with the zero-shot method text.

    Returns:
      The section's markdown.
    """
    if zeroshot:
        rows = zeroshot_rows(rows, zeroshot)
    sweep = lr_sweep(rows)
    summary = summarize(chosen_rows(rows, sweep))
    same_rate = same_rate_summary(rows)
    plots = ()
    results = pathlib.Path(results)
    if plots_dir is not None and rows:
        written = study_plots(rows, sweep, summary, plots_dir)
        plots = tuple(os.path.relpath(p, results.parent) for p in written)
    text = results_markdown(
        summary,
        rows,
        command=command,
        config_text=config_text,
        sweep=sweep,
        title=title
        or (
            f"Zero-shot study `{name}`: sigmoid vs softmax, sets never seen vs PCA"
            if zeroshot
            else f"Study `{name}`: sigmoid vs softmax, held-out cells vs PCA"
        ),
        plots=plots,
        same_rate=same_rate,
        method=_ZEROSHOT_METHOD if zeroshot else None,
    )
    write_section(results, name, text)
    if plots_dir is not None:
        pathlib.Path(plots_dir, "summary.json").write_text(
            json.dumps({"sweep": sweep, "summary": summary, "same_rate": same_rate}, indent=2)
        )
    return text
