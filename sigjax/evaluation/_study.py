"""The sigmoid-vs-softmax study: data sets x attentions x seeds, scored and summarised.

Every (data set, seed) pair trains both attentions from the same config with the same seed
(`config.seed`: parameters, masks; `config.data.seed`: train/validation split and batch order), so
the two runs see identical initial parameters, cells, batches and masks and differ only in the
attention. Each run is evaluated with `evaluate_run(cells="val")` (val loss on its held-out cells;
embedding scores on all cells of the data set), and the PCA-of-HVG baseline is scored on the same
cells. Finished runs (those with DIR/scores.json) are skipped, so an interrupted study resumes.
"""

import copy
import datetime
import json
import pathlib
import platform
import textwrap
import time

import numpy as np

from sigjax.evaluation._evaluate import SCORES_FILE, evaluate_run
from sigjax.evaluation._score import SCORE_NAMES
from sigjax.model import ATTENTIONS

METRICS = ("val_loss", *SCORE_NAMES)
_METHOD = (
    "Each data set: sigmoid and softmax trained from the same config with the same seeds "
    "(parameters, masks, train/validation split and batch order identical; only the attention "
    "differs), one pair per seed. `val_loss`: masked-expression loss on the held-out cells "
    "(cross-entropy over value bins; lower is better). Embedding scores (higher is better) on the "
    "cells of the data set (train and validation), against its cell-type labels; definitions in "
    "`sigjax/evaluation/_score.py`. Mean ± sample std over seeds; diff = sigmoid − softmax of the "
    "means, rel. diff = diff / |softmax| (large for scores near 0). `PCA-HVG` is the baseline "
    "embedding (PCA of log-normalised highly "
    "variable genes) on the same cells. `sigmoid better`: seeds in which sigmoid had the lower "
    "val_loss / higher score, of the seed pairs. `mean_pool/*`: the same model's embedding with "
    "mean pooling instead of the config's CLS token (pooling acts only at embedding time). Wall "
    "time: training plus data loading and compilation on a shared 2-core machine, not a speed "
    "measurement."
)


def run_dir(out, dataset: str, attention: str, seed: int) -> pathlib.Path:
    """OUT/<dataset>/<attention>_seed<seed>."""
    return pathlib.Path(out) / dataset / f"{attention}_seed{seed}"


def study_config(base, dataset: str, attention: str, seed: int):
    """`base` (a training ConfigDict) for one run: data set, attention and seeds set."""
    config = copy.deepcopy(base)
    config.data.dataset = dataset
    config.data.path = ""
    config.model.attention = attention
    config.seed = seed
    config.data.seed = seed
    return config


def run_study(base, out, *, datasets, seeds=(0, 1, 2), max_cells: int | None = None) -> list[dict]:
    """Trains and scores every (data set, attention, seed); skips runs already scored.

    Args:
      base: training config shared by all runs (e.g. configs/small.py with overrides).
      out: study directory; runs go to OUT/<dataset>/<attention>_seed<seed>.
      datasets: data set names (see `sigjax.data.DATASETS`).
      seeds: seeds; each trains both attentions.
      max_cells: score at most this many cells per data set (fixed subset), None = all.

    Returns:
      One row per run: {"dataset", "attention", "seed", "train_time_s", "n_cells", <METRICS>,
      "<other pooling>_pool/<score>", "pca_hvg/<score>"}.

    Raises:
      ValueError, NonFiniteError: from training (a diverged run stops the study; rerun resumes).
    """
    from sigjax.training import train_and_evaluate

    rows = []
    # Seed-major order: an interrupted study holds complete sigmoid/softmax pairs on every data set.
    for seed in seeds:
        for dataset in datasets:
            for attention in ATTENTIONS:
                workdir = run_dir(out, dataset, attention, seed)
                scores_path = workdir / SCORES_FILE
                if scores_path.exists():
                    print(f"== {dataset} {attention} seed {seed}: done, skipping")
                    scores = json.loads(scores_path.read_text())
                else:
                    print(
                        f"== {dataset} {attention} seed {seed}: training in {workdir}", flush=True
                    )
                    t0 = time.perf_counter()
                    train_and_evaluate(study_config(base, dataset, attention, seed), workdir)
                    train_time = time.perf_counter() - t0
                    # Pooling only acts at embedding time: score the other pooling too.
                    other = "cls" if base.model.pooling == "mean" else "mean"
                    scores = evaluate_run(
                        workdir,
                        cells="val",
                        max_cells=max_cells,
                        baseline=True,
                        extra_poolings=(other,),
                        write=False,
                    )
                    scores["train_time_s"] = train_time
                    scores_path.write_text(json.dumps(scores, indent=2))
                rows.append({"dataset": dataset, "attention": attention, "seed": seed, **scores})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds, and the relative difference, per data set and metric.

    `std` is the sample standard deviation (ddof=1; 0 with one seed). `rel_diff` is
    (mean_sigmoid - mean_softmax) / |mean_softmax|: for val_loss negative favours sigmoid, for the
    scores positive does. `pca_hvg` is the baseline's score for the same metric (mean over the
    seeds' identical cell sets). Metrics: METRICS, then any "<pooling>_pool/<score>" in the rows.

    Args:
      rows: the rows of `run_study`.

    Returns:
      One dict per (dataset, metric): {"dataset", "metric", "n_seeds", "sigmoid_mean",
      "sigmoid_std", "softmax_mean", "softmax_std", "rel_diff", "sigmoid_wins", "n_pairs",
      "pca_hvg"}; sigmoid_wins counts the seeds (of n_pairs with both runs) in which sigmoid had
      the lower val_loss or the higher score.
    """
    out = []
    extra = [k for r in rows for k in r if k.endswith("_pool/" + k.rsplit("/", 1)[-1])]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for metric in (*METRICS, *dict.fromkeys(extra)):
            entry = {"dataset": dataset, "metric": metric}
            for attention in ATTENTIONS:
                v = np.array(
                    [
                        r[metric]
                        for r in rows
                        if r["dataset"] == dataset and r["attention"] == attention and metric in r
                    ],
                    np.float64,
                )
                entry["n_seeds"] = len(v)
                entry[f"{attention}_mean"] = float(v.mean()) if len(v) else float("nan")
                entry[f"{attention}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
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
            lower_better = metric == "val_loss"
            entry["sigmoid_wins"] = sum((a < b) if lower_better else (a > b) for a, b in pairs)
            entry["n_pairs"] = len(pairs)
            soft = entry["softmax_mean"]
            entry["rel_diff"] = (entry["sigmoid_mean"] - soft) / abs(soft) if soft else float("nan")
            key = "pca_hvg/" + metric.rsplit("/", 1)[-1]
            base = [r[key] for r in rows if r["dataset"] == dataset and key in r]
            entry["pca_hvg"] = float(np.mean(base)) if base else None
            out.append(entry)
    return out


def _device() -> str:
    import os

    import jax

    d = jax.devices()[0]
    return (
        f"{d.platform.upper()} ({getattr(d, 'device_kind', '')}), {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}; jax {jax.__version__}"
    )


def results_markdown(
    summary: list[dict],
    rows: list[dict],
    *,
    command: str,
    config_text: str,
    commit: str | None = None,
) -> str:
    """docs/results.md: provenance, the setup, one table per data set, and per-run numbers.

    Args:
      summary: `summarize(rows)`.
      rows: the rows of `run_study`.
      command: the command that ran the study.
      config_text: the shared setup, printed verbatim.
      commit: the code's commit; default: the commit of this source tree (`git rev-parse HEAD`,
        "+dirty" with uncommitted changes, "unknown" outside a git checkout).

    Returns:
      The markdown text.
    """
    from sigjax._io import git_commit

    commit = commit or git_commit() or "unknown"
    today = datetime.date.today().isoformat()
    lines = [
        "# Sigmoid vs softmax attention: masked-expression pretraining and cell embeddings",
        "",
        f"- Date: {today}",
        f"- Device: {_device()}",
        f"- Command: `{command}`",
        f"- Commit: `{commit}`",
        "",
        *textwrap.wrap(_METHOD, 100),
        "",
        "Setup (shared by every run):",
        "",
        "```",
        config_text.strip(),
        "```",
        "",
    ]
    for dataset in dict.fromkeys(s["dataset"] for s in summary):
        n_cells = next((r.get("n_cells") for r in rows if r["dataset"] == dataset), None)
        n = next(s["n_seeds"] for s in summary if s["dataset"] == dataset)
        lines += [
            f"## {dataset} ({n_cells} cells scored, {n} seeds)",
            "",
            "| metric | sigmoid | softmax | diff | rel. diff | sigmoid better | PCA-HVG |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in summary:
            if s["dataset"] != dataset:
                continue
            base = "" if s["pca_hvg"] is None else f"{s['pca_hvg']:.4f}"
            lines.append(
                f"| {s['metric']} | {s['sigmoid_mean']:.4f} ± {s['sigmoid_std']:.4f} "
                f"| {s['softmax_mean']:.4f} ± {s['softmax_std']:.4f} "
                f"| {s['sigmoid_mean'] - s['softmax_mean']:+.4f} | {s['rel_diff']:+.1%} "
                f"| {s['sigmoid_wins']}/{s['n_pairs']} | {base} |"
            )
        lines.append("")
    lines += [
        "## Per run",
        "",
        "| data set | attention | seed | wall time (s) | " + " | ".join(METRICS) + " |",
        "|" + "---|" * (4 + len(METRICS)),
    ]
    for r in rows:
        t = r.get("train_time_s")
        lines.append(
            f"| {r['dataset']} | {r['attention']} | {r['seed']} | "
            + ("" if t is None else f"{t:.0f}")
            + " | "
            + " | ".join(f"{r[m]:.4f}" if m in r else "" for m in METRICS)
            + " |"
        )
    return "\n".join(lines) + "\n"
