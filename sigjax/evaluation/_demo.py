"""The README demo (`make demo`): sigmoid vs softmax `small` models on bundled PBMC 68k, on CPU."""

import json
import pathlib

from sigjax.evaluation._evaluate import SCORES_FILE, evaluate_run
from sigjax.evaluation._runs import compare_runs, markdown_table
from sigjax.evaluation._score import SCORE_NAMES
from sigjax.model import ATTENTIONS


def run_demo(base, out="runs/demo") -> str:
    """Trains `base` with sigmoid and with softmax attention, evaluates both, prints a comparison.

    Both runs share the config, seeds and data order, so they differ only in the attention. Each
    is evaluated with `evaluate_run(cells="val", baseline=True, umap=True)`: validation loss,
    embedding scores of the held-out cells (never trained on) against the PBMC `bulk_labels`,
    kNN accuracy from the training cells, and the PCA-of-HVG baseline of the same cells. A rerun
    skips finished runs (DIR/scores.json) and resumes unfinished training from its checkpoints.

    Args:
      base: a training config (`configs/small.py` for `make demo`); its `model.attention` is set.
      out: output directory: OUT/<attention> run directories (each with umap.png), OUT/compare.md,
        OUT/compare.png, OUT/demo.md (the table printed last).

    Returns:
      The final table (markdown): one row per attention (its embedding, `model.readout`), one
      per attention with its other readout (pooled beside decoder), the baseline, and the
      relative difference sigmoid vs softmax.

    Raises:
      ValueError, NonFiniteError: from training.
    """
    from sigjax.evaluation._study import study_config
    from sigjax.training import train_and_evaluate

    out = pathlib.Path(out)
    dataset = base.data.dataset
    scores = {}
    for attention in ATTENTIONS:
        workdir = out / attention
        if (workdir / SCORES_FILE).exists():
            print(f"== {attention}: already trained and scored in {workdir}")
            scores[attention] = json.loads((workdir / SCORES_FILE).read_text())
            continue
        config = study_config(base, dataset, attention, int(base.seed))
        config.data.seed = base.data.seed
        print(f"== training {attention} on {dataset} in {workdir}", flush=True)
        train_and_evaluate(config, workdir)
        print(f"== embedding and scoring {attention}", flush=True)
        scores[attention] = evaluate_run(workdir, cells="val", baseline=True, umap=True)
    compare_runs([out / a for a in scores], out, embed=False)
    sig, soft = scores["sigmoid"], scores["softmax"]
    names = ("val_loss", *SCORE_NAMES, "knn_accuracy")
    rows = [{"embedding": a, **{k: scores[a].get(k) for k in names}} for a in scores]
    # The same models' other readout (evaluate_run scores it too): pooled beside decoder.
    for a in scores:
        other = [k for k in scores[a] if k.endswith("_readout/knn_purity")]
        if other:
            kind = other[0].split("_readout/")[0]
            rows.append(
                {
                    "embedding": f"{a}, {kind} readout",
                    **{k: scores[a].get(f"{kind}_readout/{k}") for k in names},
                }
            )
    rows.append(
        {"embedding": "PCA of HVGs (baseline)", **{k: sig.get(f"pca_hvg/{k}") for k in names}}
    )
    rows.append(
        {
            "embedding": "rel. diff sigmoid vs softmax",
            **{
                k: f"{(sig[k] - soft[k]) / abs(soft[k]):+.1%}" if soft[k] else ""
                for k in names
                if soft.get(k) is not None
            },
        }
    )
    table = markdown_table(rows, ["embedding", *names])
    verdict = _verdict(scores)
    head = (
        f"{dataset}: {sig['n_cells']} held-out cells scored (never trained on); val_loss lower is "
        "better, scores higher is better (definitions: sigjax/evaluation/_score.py)"
    )
    (out / "demo.md").write_text(f"{head}\n\n{table}\n\n{verdict}\n")
    print(f"\n{head}")
    print(table)
    print(f"\n{verdict}")
    files = [out / "demo.md", out / "compare.md", out / "compare.png"]
    files += [out / a / "umap.png" for a in scores]
    print("files: " + ", ".join(str(f) for f in files if f.exists()))
    return table


def _verdict(scores: dict, keys=("knn_purity", "nmi", "knn_accuracy")) -> str:
    """One line: each model against the PCA baseline on the headline scores, and which is best."""
    parts = []
    for attention, s in scores.items():
        vs = [
            f"{k} {s[k]:.3f} vs {s[f'pca_hvg/{k}']:.3f}"
            for k in keys
            if s.get(k) is not None and s.get(f"pca_hvg/{k}") is not None
        ]
        wins = sum(s[k] >= s[f"pca_hvg/{k}"] for k in keys if s.get(f"pca_hvg/{k}") is not None)
        parts.append(f"{attention} beats or ties PCA on {wins} of {len(vs)} ({'; '.join(vs)})")
    best = max(scores, key=lambda a: scores[a].get("knn_purity", float("-inf")))
    return "Verdict: " + " | ".join(parts) + f". Best kNN purity: {best}."
