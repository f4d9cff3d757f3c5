"""Reading training runs (metrics.jsonl), comparing them, and the stability report."""

import json
import math
import pathlib

import numpy as np


def read_metrics(workdir) -> list[dict]:
    """Rows of DIR/metrics.jsonl; a resumed run's repeated steps keep their last value."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"run: no metrics.jsonl in {workdir}; expected a training run directory")
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["step"]] = {**rows.get(row["step"], {}), **row}
    return [rows[s] for s in sorted(rows)]


def series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=np.float64)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_name(workdir) -> str:
    return pathlib.Path(workdir).name


def stability_summary(workdir) -> dict:
    """Max/initial gradient-norm ratio, first non-finite step, final loss, mean step time."""
    rows = read_metrics(workdir)
    steps, g = series(rows, "train/grad_norm")
    _, loss = series(rows, "train/loss")
    bad = [r["step"] for r in rows if any(
        isinstance(v, float) and not math.isfinite(v) for k, v in r.items() if k.startswith("train/"))]
    finite = g[np.isfinite(g)]
    _, st = series(rows, "perf/step_time")
    return {
        "run": run_name(workdir),
        "steps": int(steps[-1]) if len(steps) else 0,
        "grad_norm_initial": float(finite[0]) if len(finite) else float("nan"),
        "grad_norm_max": float(finite.max()) if len(finite) else float("nan"),
        "max_over_initial": float(finite.max() / finite[0]) if len(finite) and finite[0] > 0 else float("nan"),
        "first_nonfinite_step": bad[0] if bad else None,
        "final_loss": float(loss[-1]) if len(loss) else float("nan"),
        # The first logged interval includes compilation: leave it out of the mean.
        "mean_step_time_s": float(np.mean(st[1:])) if len(st) > 1 else (float(st[0]) if len(st) else float("nan")),
    }


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def stability_report(workdirs, out=None) -> list[dict]:
    """`python -m eval stability`: one PNG (grad norm, log scale, and loss vs step per run, plus
    per-block gradient norms), and the summary table printed and written as JSON/markdown."""
    plt = _plt()
    out = pathlib.Path(out or ".")
    out.mkdir(parents=True, exist_ok=True)
    summaries = [stability_summary(w) for w in workdirs]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    for w in workdirs:
        rows = read_metrics(w)
        s, g = series(rows, "train/grad_norm")
        axes[0].plot(s, g, label=run_name(w))
        s, lo = series(rows, "train/loss")
        axes[1].plot(s, lo, label=run_name(w))
        block_keys = sorted({k for r in rows for k in r if k.startswith("grad_norm/block_")})
        for k in block_keys:
            s, v = series(rows, k)
            axes[2].plot(s, v, lw=0.8, alpha=0.7, label=f"{run_name(w)} {k[10:]}" if len(block_keys) <= 8 else None)
    axes[0].set(yscale="log", xlabel="step", ylabel="global gradient norm (before clipping)")
    axes[1].set(xlabel="step", ylabel="training loss")
    axes[2].set(yscale="log", xlabel="step", ylabel="per-block gradient norm")
    for ax in axes[:2]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "stability.png", dpi=120)
    cols = ["run", "steps", "grad_norm_initial", "grad_norm_max", "max_over_initial",
            "first_nonfinite_step", "final_loss", "mean_step_time_s"]
    table = markdown_table(summaries, cols)
    (out / "stability.md").write_text(table + "\n")
    (out / "stability.json").write_text(json.dumps(summaries, indent=2))
    print(table)
    return summaries


def compare_runs(workdirs, out) -> str:
    """`python -m eval compare`: a markdown table of each run's scores (final/best val loss, and the
    embedding scores in DIR/scores.json if present) and PNG plots of val loss and train grad norm."""
    plt = _plt()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table_rows, score_keys = [], []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for w in workdirs:
        rows = read_metrics(w)
        vs, vl = series(rows, "val/loss")
        gs, g = series(rows, "train/grad_norm")
        axes[0].plot(vs, vl, marker="o", label=run_name(w))
        axes[1].plot(gs, g, label=run_name(w))
        row = {"run": run_name(w), "final val/loss": float(vl[-1]) if len(vl) else None,
               "best val/loss": float(vl.min()) if len(vl) else None,
               "final train/loss": float(series(rows, "train/loss")[1][-1])}
        scores_path = pathlib.Path(w) / "scores.json"
        if scores_path.exists():
            scores = json.loads(scores_path.read_text())
            for k, v in scores.items():
                if isinstance(v, (int, float)):
                    row[k] = float(v)
                    if k not in score_keys:
                        score_keys.append(k)
        table_rows.append(row)
    axes[0].set(xlabel="step", ylabel="validation loss")
    axes[1].set(yscale="log", xlabel="step", ylabel="training gradient norm")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=120)
    table = markdown_table(table_rows, ["run", "final val/loss", "best val/loss", "final train/loss", *score_keys])
    (out / "compare.md").write_text(table + "\n")
    print(table)
    return table
