"""Comparing training runs and the stability report, from their metrics (`read_metrics`)."""

import json
import math
import pathlib

import numpy as np

from sigjax.training._metrics import (
    FROZEN_FRACTION,
    UPDATE_RATIO,
    frozen_groups,
    frozen_message,
    median_update_ratios,
    read_metrics,
)

RATIO_ROWS = 20  # The last logged rows whose update ratios decide whether a group is frozen.


def series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric, over the rows that hold it (float64 values)."""
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return np.array([p[0] for p in pts], np.int64), np.array([p[1] for p in pts], np.float64)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_name(workdir) -> str:
    """A run's label in tables and plots: its directory name."""
    return pathlib.Path(workdir).name


def _is_nonfinite(v) -> bool:
    return isinstance(v, (int, float)) and not math.isfinite(v)


def stability_summary(workdir, last: int = RATIO_ROWS) -> dict:
    """The numbers of `python -m eval stability` for one run.

    Definitions (over the logged rows of metrics.jsonl; steps are logged every `log_every`):
    - grad_norm_initial: the first finite logged `train/grad_norm` (global L2 norm of the
      gradient before clipping); grad_norm_max: the largest finite one; max_over_initial: their
      ratio (a spike detector: a healthy run stays near or below 1 after warm-up).
    - first_nonfinite_step: the first step with a NaN/inf in any `train/*`, `grad_norm/*` or
      `val/*` value (None if there is none).
    - final_loss: the last logged `train/loss`; final_val_loss: the last `val/loss`.
    - mean_step_time_s: mean of `perf/step_time` (seconds per step, averaged over each logging
      interval) leaving out the first interval, which includes compilation.
    - update_ratios: each group's median `update_ratio/<group>` (update norm over parameter
      norm, see `sigjax.training.update_ratios`) over the last `last` rows that hold them;
      frozen: {group: its median / the median of the others'} for the groups below 1e-3 x the
      median of the other groups' (`sigjax.training.frozen_groups`), {} when none is, None when
      the run logged no ratios.

    Args:
      workdir: a training run directory.
      last: logged rows (the latest) over which the update ratios are taken (>= 1).

    Returns:
      {"run", "steps", "grad_norm_initial", "grad_norm_max", "max_over_initial",
      "first_nonfinite_step", "final_loss", "final_val_loss", "mean_step_time_s",
      "update_ratios", "frozen"}.

    Raises:
      FileNotFoundError: no metrics.jsonl.
      ValueError: `last` < 1.
    """
    if int(last) < 1:
        raise ValueError(f"last: got {last!r}, expected an integer >= 1")
    rows = read_metrics(workdir)
    ratio_rows = [r for r in rows if any(k.startswith(UPDATE_RATIO) for k in r)][-int(last) :]
    _, g = series(rows, "train/grad_norm")
    _, loss = series(rows, "train/loss")
    _, val = series(rows, "val/loss")
    _, st = series(rows, "perf/step_time")
    checked = ("train/", "grad_norm/", "val/")
    bad = [
        r["step"]
        for r in rows
        if any(k.startswith(checked) and _is_nonfinite(v) for k, v in r.items())
    ]
    finite = g[np.isfinite(g)]
    nan = float("nan")
    return {
        "run": run_name(workdir),
        "steps": int(rows[-1]["step"]) if rows else 0,
        "grad_norm_initial": float(finite[0]) if len(finite) else nan,
        "grad_norm_max": float(finite.max()) if len(finite) else nan,
        "max_over_initial": float(finite.max() / finite[0])
        if len(finite) and finite[0] > 0
        else nan,
        "first_nonfinite_step": bad[0] if bad else None,
        "final_loss": float(loss[-1]) if len(loss) else nan,
        "final_val_loss": float(val[-1]) if len(val) else nan,
        "mean_step_time_s": float(np.mean(st[1:] if len(st) > 1 else st)) if len(st) else nan,
        "update_ratios": median_update_ratios(ratio_rows),
        "frozen": frozen_groups(ratio_rows) if ratio_rows else None,
    }


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of `rows` (dicts) with the given columns; floats to 4 significant digits,
    lists (and dict keys) joined by commas ("none" when empty), missing values empty."""

    def fmt(v):
        if isinstance(v, (list, tuple, dict)):  # e.g. the frozen groups: "none" when empty.
            return ", ".join(map(str, v)) or "none"
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def stability_report(workdirs, out=None) -> list[dict]:
    """`python -m eval stability`: plots and the `stability_summary` of each run.

    Writes OUT/stability.png: global gradient norm (log scale), training loss, and (when the runs
    logged them) the per-block gradient norms `grad_norm/block_{i}/{attention,mlp}` and the
    per-group update ratios `update_ratio/<group>` (log scale) vs step, one line per run (and
    group); OUT/stability.md and OUT/stability.json with the summaries, which are also printed.
    The table's `frozen` column names each run's frozen groups, and a warning line is printed
    for every run that has any.

    Args:
      workdirs: training run directories.
      out: output directory (default the current one).

    Returns:
      The summaries, one per run.

    Raises:
      FileNotFoundError: a run without metrics.jsonl.
    """
    plt = _plt()
    out = pathlib.Path(out or ".")
    out.mkdir(parents=True, exist_ok=True)
    summaries = [stability_summary(w) for w in workdirs]
    runs = [(run_name(w), read_metrics(w)) for w in workdirs]
    panels = [
        (prefix, ylabel)
        for prefix, ylabel in (
            ("grad_norm/block_", "per-block gradient norm"),
            (UPDATE_RATIO, "update norm / parameter norm"),
        )
        if any(k.startswith(prefix) for _, rows in runs for r in rows for k in r)
    ]
    n = 2 + len(panels)
    fig, axes = plt.subplots(1, n, figsize=(6 * n - 1, 4.5))
    for name, rows in runs:
        axes[0].plot(*series(rows, "train/grad_norm"), label=name)
        axes[1].plot(*series(rows, "train/loss"), label=name)
        for ax, (prefix, _) in zip(axes[2:], panels, strict=True):
            keys = sorted({k for r in rows for k in r if k.startswith(prefix)})
            for k in keys:
                short = k[len("grad_norm/") :] if prefix.startswith("grad_norm/") else k
                label = f"{name} {short}" if len(keys) * len(runs) <= 12 else None
                ax.plot(*series(rows, k), lw=0.8, alpha=0.7, label=label)
    axes[0].set(yscale="log", xlabel="step", ylabel="gradient norm (global, before clipping)")
    axes[1].set(xlabel="step", ylabel="training loss")
    for ax, (_, ylabel) in zip(axes[2:], panels, strict=True):
        ax.set(yscale="log", xlabel="step", ylabel=ylabel)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "stability.png", dpi=120)
    plt.close(fig)
    cols = [
        "run",
        "steps",
        "grad_norm_initial",
        "grad_norm_max",
        "max_over_initial",
        "first_nonfinite_step",
        "final_loss",
        "final_val_loss",
        "mean_step_time_s",
        "frozen",
    ]
    table = markdown_table(summaries, cols)
    (out / "stability.md").write_text(table + "\n")
    (out / "stability.json").write_text(json.dumps(summaries, indent=2))
    print(table)
    for s in summaries:
        if s["frozen"]:
            print(f"WARNING {s['run']}: {frozen_message(s['frozen'], FROZEN_FRACTION)}")
    for name in ("stability.png", "stability.md", "stability.json"):
        print(f"wrote {out / name}")
    return summaries


def compare_runs(workdirs, out, *, embed: bool = True, cells: str = "val") -> str:
    """`python -m eval compare`: the runs side by side, as a markdown table and plots.

    Table columns: final and best `val/loss` and final `train/loss` from DIR/metrics.jsonl, then
    every number in DIR/scores.json (`val_loss` and the embedding scores of `evaluate_run`). A run
    without scores.json is evaluated first when `embed` is set (embedding scores on its validation
    cells by default); a run that cannot be (no checkpoint, data without labels) is listed
    without scores and the reason printed.
    Writes OUT/compare.md and OUT/compare.png (validation loss and training gradient norm, log
    scale, vs step; one line per run).

    Args:
      workdirs: training run directories.
      out: output directory (created).
      embed: evaluate runs that have no scores.json.
      cells: cells to embed for those runs ("val" or "all", see `evaluate_run`).

    Returns:
      The markdown table.

    Raises:
      FileNotFoundError: a run without metrics.jsonl.
    """
    from sigjax.evaluation._evaluate import SCORES_FILE, evaluate_run

    plt = _plt()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table_rows, score_keys = [], []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for w in workdirs:
        rows = read_metrics(w)
        vs, vl = series(rows, "val/loss")
        gs, g = series(rows, "train/grad_norm")
        _, tl = series(rows, "train/loss")
        axes[0].plot(vs, vl, marker="o", label=run_name(w))
        axes[1].plot(gs, g, label=run_name(w))
        row = {
            "run": run_name(w),
            "final val/loss": float(vl[-1]) if len(vl) else None,
            "best val/loss": float(vl.min()) if len(vl) else None,
            "final train/loss": float(tl[-1]) if len(tl) else None,
        }
        scores_path = pathlib.Path(w) / SCORES_FILE
        if not scores_path.exists() and embed:
            try:
                evaluate_run(w, cells=cells)
            except (FileNotFoundError, ValueError) as e:  # no checkpoint, or no labels
                print(f"{run_name(w)}: no embedding scores ({type(e).__name__}: {e})")
        if scores_path.exists():
            for k, v in json.loads(scores_path.read_text()).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    row[k] = float(v) if isinstance(v, float) else v
                    if k not in score_keys:
                        score_keys.append(k)
        table_rows.append(row)
    axes[0].set(xlabel="step", ylabel="validation loss")
    axes[1].set(yscale="log", xlabel="step", ylabel="training gradient norm")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=120)
    plt.close(fig)
    cols = ["run", "final val/loss", "best val/loss", "final train/loss", *score_keys]
    table = markdown_table(table_rows, cols)
    (out / "compare.md").write_text(table + "\n")
    print(table)
    for name in ("compare.png", "compare.md"):
        print(f"wrote {out / name}")
    return table
