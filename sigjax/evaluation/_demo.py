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
    is evaluated with `evaluate_run(cells="all", baseline=True)`: validation loss on the held-out
    cells, embedding scores on all (train + validation) cells against the PBMC `bulk_labels`, and
    the PCA-of-HVG baseline on the same cells. A rerun skips finished runs (DIR/scores.json) and
    resumes unfinished training from its checkpoints.

    Args:
      base: a training config (`configs/small.py` for `make demo`); its `model.attention` is set.
      out: output directory: OUT/<attention> run directories, OUT/compare.md, OUT/compare.png,
        OUT/demo.md (the table printed last).

    Returns:
      The final table (markdown): one row per attention plus the baseline, and the relative
      difference sigmoid vs softmax.

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
        scores[attention] = evaluate_run(workdir, cells="all", baseline=True)
    compare_runs([out / a for a in scores], out, embed=False)
    sig, soft = scores["sigmoid"], scores["softmax"]
    rows = [
        {"embedding": a, **{k: scores[a][k] for k in ("val_loss", *SCORE_NAMES)}} for a in scores
    ]
    rows.append(
        {"embedding": "PCA of HVGs (baseline)", **{k: sig.get(f"pca_hvg/{k}") for k in SCORE_NAMES}}
    )
    rows.append(
        {
            "embedding": "rel. diff sigmoid vs softmax",
            **{
                k: f"{(sig[k] - soft[k]) / abs(soft[k]):+.1%}" if soft[k] else ""
                for k in ("val_loss", *SCORE_NAMES)
            },
        }
    )
    table = markdown_table(rows, ["embedding", "val_loss", *SCORE_NAMES])
    (out / "demo.md").write_text(
        f"{dataset}: {sig['n_cells']} cells scored; val_loss lower is better, scores higher is "
        f"better (definitions: sigjax/evaluation/_score.py)\n\n{table}\n"
    )
    print(
        f"\n{dataset}, {sig['n_cells']} cells (val_loss: lower is better; scores: higher is better)"
    )
    print(table)
    return table
