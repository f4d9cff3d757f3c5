"""Comparing training runs and the stability report, from their metrics (`read_metrics`)."""

import json
import math
import pathlib

import numpy as np

from sigjax._io import save_png
from sigjax.training._metrics import (
    FROZEN_FRACTION,
    FROZEN_VS_ENDS,
    LAG_FRACTION,
    UPDATE_RATIO,
    frozen_groups,
    frozen_message,
    lagging_groups,
    lagging_message,
    median_update_ratios,
    read_metrics,
)

RATIO_ROWS = 20  # The last logged rows whose update ratios decide whether a group is frozen.
SPIKE_FACTOR = 10.0  # Issue 15: stable = no non-finite value, gradient norm <= 10x running median.
RUNNING_WINDOW = 50  # Logged values the running median is taken over.
MIN_HISTORY = 10  # Logged values needed before a running median is trusted.


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


def running_median_ratio(
    values: np.ndarray, window: int = RUNNING_WINDOW, min_history: int = MIN_HISTORY
) -> np.ndarray:
    """Each value over the median of the finite values logged before it (the last `window` of
    them); NaN where fewer than `min_history` came before, or the value is not finite.

    The spike test of the stability grid: a run whose gradient norm is ever more than
    SPIKE_FACTOR x its running median is not stable. A trailing window, not the whole history,
    so that the large gradients of the first steps do not hide a later spike.
    """
    values = np.asarray(values, np.float64)
    out = np.full(len(values), np.nan)
    history: list[float] = []
    for i, v in enumerate(values):
        if np.isfinite(v):
            if len(history) >= min_history:
                median = float(np.median(history[-window:]))
                out[i] = v / median if median > 0 else np.inf
            history.append(float(v))
    return out


def _run_fields(workdir) -> dict:
    """attention, learning_rate and seed from the run's config.json (None without one)."""
    path = pathlib.Path(workdir) / "config.json"
    if not path.is_file():
        return {"attention": None, "learning_rate": None, "seed": None}
    c = json.loads(path.read_text())
    return {
        "attention": c.get("model", {}).get("attention"),
        "learning_rate": c.get("train", {}).get("learning_rate"),
        "seed": c.get("seed"),
    }


def stability_summary(workdir, last: int = RATIO_ROWS) -> dict:
    """The numbers of `python -m eval stability` for one run.

    Definitions (over the logged rows of metrics.jsonl; steps are logged every `log_every`):
    - attention, learning_rate, seed: from the run's config.json (None without one).
    - grad_norm_initial: the first finite logged `train/grad_norm` (global L2 norm of the
      gradient before clipping); grad_norm_max: the largest finite one; max_over_initial: their
      ratio.
    - max_over_running_median: the largest `train/grad_norm` / the median of the (up to)
      RUNNING_WINDOW finite values logged before it, once MIN_HISTORY have been
      (`running_median_ratio`); NaN for a run too short to tell.
    - first_nonfinite_step: the first step with a NaN/inf in any `train/*`, `grad_norm/*` or
      `val/*` value (None if there is none); nonfinite: whether there is one.
    - stable: issue 15's definition: no non-finite value and the gradient norm never more than
      SPIKE_FACTOR x its running median (False when a non-finite value was logged; None when the
      run is too short to tell).
    - final_loss: the last logged `train/loss`; final_val_loss: the last `val/loss`.
    - mean_step_time_s: mean of `perf/step_time` (seconds per step, averaged over each logging
      interval) leaving out the first interval, which includes compilation.
    - update_ratios: each group's median `update_ratio/<group>` (update norm over parameter
      norm, see `sigjax.training.update_ratios`) over the last `last` rows that hold them;
      mlp_update_ratio: the median of the blocks' MLP values among them (a frozen network has a
      tiny one however stable its gradients look; NaN without ratios); frozen: {group: its
      median / the median of the others'} for the groups below 1e-3 x the median of the other
      groups' (`sigjax.training.frozen_groups`), {} when none is, None when the run logged no
      ratios; lagging: the same for the groups that are not frozen but below LAG_FRACTION x the
      others' median (`sigjax.training.lagging_groups`: they train, ~30x slower than the rest).

    Args:
      workdir: a training run directory (or a grid run's record: metrics.jsonl, config.json).
      last: logged rows (the latest) over which the update ratios are taken (>= 1).

    Returns:
      {"run", "attention", "learning_rate", "seed", "steps", "grad_norm_initial",
      "grad_norm_max", "max_over_initial", "max_over_running_median", "first_nonfinite_step",
      "nonfinite", "stable", "final_loss", "final_val_loss", "mean_step_time_s",
      "update_ratios", "mlp_update_ratio", "frozen", "lagging"}.

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
    spikes = running_median_ratio(g)
    spike = float(np.nanmax(spikes)) if (~np.isnan(spikes)).any() else nan
    if bad:
        stable = False
    elif math.isnan(spike):
        stable = None
    else:
        stable = bool(spike <= SPIKE_FACTOR)
    ratios = median_update_ratios(ratio_rows)
    mlp = [v for k, v in ratios.items() if k.endswith("/mlp")]
    return {
        "run": run_name(workdir),
        **_run_fields(workdir),
        "steps": int(rows[-1]["step"]) if rows else 0,
        "grad_norm_initial": float(finite[0]) if len(finite) else nan,
        "grad_norm_max": float(finite.max()) if len(finite) else nan,
        "max_over_initial": float(finite.max() / finite[0])
        if len(finite) and finite[0] > 0
        else nan,
        "max_over_running_median": spike,
        "first_nonfinite_step": bad[0] if bad else None,
        "nonfinite": bool(bad),
        "stable": stable,
        "final_loss": float(loss[-1]) if len(loss) else nan,
        "final_val_loss": float(val[-1]) if len(val) else nan,
        "mean_step_time_s": float(np.mean(st[1:] if len(st) > 1 else st)) if len(st) else nan,
        "update_ratios": ratios,
        "mlp_update_ratio": float(np.median(mlp)) if mlp else nan,
        "frozen": frozen_groups(ratio_rows) if ratio_rows else None,
        "lagging": lagging_groups(ratio_rows) if ratio_rows else None,
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


STABILITY_COLUMNS = [
    "run",
    "attention",
    "learning_rate",
    "seed",
    "steps",
    "first_nonfinite_step",
    "grad_norm_max",
    "max_over_running_median",
    "stable",
    "mlp_update_ratio",
    "final_loss",
    "final_val_loss",
    "frozen",
    "lagging",
]


def _panel_groups(summaries: list[dict]) -> list[tuple[str, list[int]]]:
    """Runs grouped for the per-block panels: by attention, and by learning rate too when one
    attention has runs at several (a grid); seeds of one group share a panel."""
    by_attention: dict = {}
    for i, s in enumerate(summaries):
        by_attention.setdefault(s["attention"] or s["run"], []).append(i)
    groups = []
    for attention, idx in by_attention.items():
        lrs = list(dict.fromkeys(summaries[i]["learning_rate"] for i in idx))
        if len(lrs) <= 1:
            groups.append((str(attention), idx))
            continue
        for lr in sorted(lrs, key=lambda v: (v is None, v or 0.0)):
            groups.append(
                (f"{attention}, lr {lr:g}", [i for i in idx if summaries[i]["learning_rate"] == lr])
            )
    return groups


def _run_styles(summaries: list[dict]) -> list[tuple[str | None, dict]]:
    """Legend label and style of each run in the all-runs panels. Runs with a known attention
    and learning rate (a grid): colour by attention, line style by learning rate, one legend
    entry per (attention, learning rate), seeds sharing it; otherwise one entry per run."""
    if any(s["attention"] is None or s["learning_rate"] is None for s in summaries):
        return [(s["run"], {}) for s in summaries]
    attentions = list(dict.fromkeys(s["attention"] for s in summaries))
    lrs = sorted({s["learning_rate"] for s in summaries})
    seen, out = set(), []
    for s in summaries:
        key = (s["attention"], s["learning_rate"])
        style = {
            "color": f"C{attentions.index(s['attention']) % 10}",
            "ls": ("-", "--", ":", "-.")[lrs.index(s["learning_rate"]) % 4],
        }
        out.append((None if key in seen else f"{key[0]}, lr {key[1]:g}", style))
        seen.add(key)
    return out


def _block_style(key: str, prefix: str, n_blocks: int, cmap) -> tuple[str, dict]:
    """Short label and line style of a per-group metric: colour by block, solid for the
    attention sub-block, dashed for the MLP; embed black, head grey."""
    short = key[len(prefix) :]
    if short.startswith("block_"):
        block, _, part = short[len("block_") :].partition("/")
        colour = cmap(0.85 * int(block) / max(n_blocks - 1, 1))  # Not viridis' pale yellow end.
        return short, {"color": colour, "ls": "-" if part == "attention" else "--"}
    return short, {"color": "black" if short == "embed" else "grey", "ls": ":"}


def _draw_groups(ax, runs, idx, prefix: str, plt) -> None:
    """One panel: `prefix*` series of the runs `idx`, coloured by block, one legend entry per
    series (seeds of the group overlaid in the same colours)."""
    keys = sorted(
        {k for i in idx for r in runs[i][1] for k in r if k.startswith(prefix)},
        key=lambda k: (not k[len(prefix) :].startswith("block_"), _block_index(k, prefix), k),
    )
    n_blocks = len({_block_index(k, prefix) for k in keys if "block_" in k}) or 1
    cmap = plt.get_cmap("viridis")
    for k in keys:
        label, style = _block_style(k, prefix, n_blocks, cmap)
        for j, i in enumerate(idx):
            ax.plot(
                *series(runs[i][1], k),
                lw=0.8,
                alpha=0.8 if len(idx) == 1 else 0.5,
                label=label if j == 0 else None,
                **style,
            )


def _block_index(key: str, prefix: str) -> int:
    short = key[len(prefix) :]
    if short.startswith("block_"):
        return int(short[len("block_") :].partition("/")[0])
    return -1


def stability_regions(summaries: list[dict]) -> list[dict]:
    """Per attention and learning rate: how many runs (seeds) were stable, how many had frozen
    sub-blocks (stable or not: a frozen network is not a stable one that trains), and how the
    unstable ones failed (first non-finite step, or the largest gradient norm over its running
    median).

    Returns:
      One dict per (attention, learning_rate), rates ascending: {"attention", "learning_rate",
      "runs", "stable", "unknown" (runs too short to tell), "frozen" (runs with frozen groups),
      "lagging" (runs with lagging groups), "failures"}.
    """
    out = []
    keys = dict.fromkeys((s["attention"], s["learning_rate"]) for s in summaries)
    for attention, lr in sorted(keys, key=lambda k: (str(k[0]), k[1] is None, k[1] or 0.0)):
        mine = [s for s in summaries if (s["attention"], s["learning_rate"]) == (attention, lr)]
        failures = []
        for s in mine:
            if s["stable"] is False:
                failures.append(
                    f"seed {s['seed']}: non-finite at step {s['first_nonfinite_step']}"
                    if s["nonfinite"]
                    else f"seed {s['seed']}: {s['max_over_running_median']:.3g}x running median"
                )
        out.append(
            {
                "attention": attention,
                "learning_rate": lr,
                "runs": len(mine),
                "stable": sum(s["stable"] is True for s in mine),
                "unknown": sum(s["stable"] is None for s in mine),
                "frozen": sum(bool(s["frozen"]) for s in mine),
                "lagging": sum(bool(s["lagging"]) for s in mine),
                "failures": failures,
            }
        )
    return out


def stability_report(workdirs, out=None) -> list[dict]:
    """`python -m eval stability`: plots and the `stability_summary` of each run.

    Writes OUT/stability.png: the global gradient norm (log scale) and training loss of every run
    (one line each, legend by run); then one row of panels per attention (per attention and
    learning rate when an attention has runs at several, its seeds overlaid): the per-block
    gradient norms `grad_norm/block_{i}/{attention,mlp}` and the per-group update ratios
    `update_ratio/<group>` vs step, log scale, coloured by block (solid: attention sub-block,
    dashed: MLP; embed and head dotted), with a legend. A frozen network shows as update ratios
    far below the others'. OUT/stability.md holds the table of runs (STABILITY_COLUMNS) and the
    stable region per attention and learning rate (`stability_regions`); OUT/stability.json the
    summaries. Both tables are printed, with a warning line for every run with frozen or lagging
    groups.

    Args:
      workdirs: training run directories (or grid records: metrics.jsonl and config.json).
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
    groups = _panel_groups(summaries)
    panels = [
        (prefix, ylabel)
        for prefix, ylabel in (
            ("grad_norm/block_", "per-block gradient norm"),
            (UPDATE_RATIO, "update norm / parameter norm"),
        )
        if any(k.startswith(prefix) for _, rows in runs for r in rows for k in r)
    ]
    n_rows = 1 + (len(groups) if panels else 0)
    n_cols = max(2, len(panels))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(7 * n_cols, 4 * n_rows), squeeze=False)
    for (label, style), (_, rows) in zip(_run_styles(summaries), runs, strict=True):
        axes[0][0].plot(*series(rows, "train/grad_norm"), lw=0.8, label=label, **style)
        axes[0][1].plot(*series(rows, "train/loss"), lw=0.8, label=label, **style)
    axes[0][0].set(yscale="log", xlabel="step", ylabel="gradient norm (global, before clipping)")
    axes[0][1].set(xlabel="step", ylabel="training loss")
    for ax in axes[0][2:]:
        ax.axis("off")
    for row, (title, idx) in zip(axes[1:], groups, strict=True):
        for ax, (prefix, ylabel) in zip(row, panels, strict=False):
            draw_prefix = "grad_norm/" if prefix.startswith("grad_norm/") else prefix
            _draw_groups(ax, runs, idx, draw_prefix, plt)
            seeds = f", {len(idx)} runs overlaid" if len(idx) > 1 else f": {runs[idx[0]][0]}"
            ax.set(yscale="log", xlabel="step", ylabel=ylabel, title=f"{title}{seeds}")
        for ax in row[len(panels) :]:
            ax.axis("off")
    for ax in axes.flat:
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=6, ncol=2 if len(handles) > 8 else 1)
    fig.tight_layout()
    save_png(fig, out / "stability.png", dpi=110)
    plt.close(fig)
    table = markdown_table(summaries, STABILITY_COLUMNS)
    regions = stability_regions(summaries)
    region_table = markdown_table(
        [{**r, "stable": f"{r['stable']}/{r['runs']}"} for r in regions],
        ["attention", "learning_rate", "stable", "unknown", "frozen", "lagging", "failures"],
    )
    note = (
        f"stable: no non-finite value and the gradient norm never > {SPIKE_FACTOR:g}x the median "
        f"of the {RUNNING_WINDOW} logged values before it (after {MIN_HISTORY}); "
        f"mlp_update_ratio: median over the blocks' MLPs of the update/parameter norm ratio over "
        f"the last {RATIO_ROWS} logged rows; frozen: the sub-blocks that barely train (update "
        f"ratio below {FROZEN_FRACTION:g}x the other groups' median or {FROZEN_VS_ENDS:g}x the "
        "embedding's and head's); lagging: the sub-blocks that train but slowly (not frozen, "
        f"update ratio below {LAG_FRACTION:g}x the other groups' median); in the second table the "
        "number of runs with any."
    )
    text = f"{table}\n\n{note}\n\nStable runs per attention and learning rate:\n\n{region_table}\n"
    (out / "stability.md").write_text(text)
    (out / "stability.json").write_text(json.dumps(summaries, indent=2))
    print(text)
    for s in summaries:
        if s["frozen"]:
            print(f"WARNING {s['run']}: {frozen_message(s['frozen'], FROZEN_FRACTION)}")
        if s["lagging"]:
            print(f"WARNING {s['run']}: {lagging_message(s['lagging'])}")
    for name in ("stability.png", "stability.md", "stability.json"):
        print(f"wrote {out / name}")
    return summaries


def compare_runs(workdirs, out, *, embed: bool = True, cells: str = "val") -> str:
    """`python -m eval compare`: the runs side by side, as a markdown table and plots.

    Table columns: final and best `val/loss` and final `train/loss` from DIR/metrics.jsonl, then
    every number in DIR/scores.json (`val_loss` and the embedding scores of `evaluate_run`; not
    its "<readout>_readout/*" and "<pooling>_pool/*" scores of the same model). A run
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
                # The same model's other readouts and poolings stay in scores.json only.
                if k.split("/")[0].endswith(("_readout", "_pool")):
                    continue
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
    save_png(fig, out / "compare.png", dpi=120)
    plt.close(fig)
    cols = ["run", "final val/loss", "best val/loss", "final train/loss", *score_keys]
    table = markdown_table(table_rows, cols)
    (out / "compare.md").write_text(table + "\n")
    print(table)
    for name in ("compare.png", "compare.md"):
        print(f"wrote {out / name}")
    return table
