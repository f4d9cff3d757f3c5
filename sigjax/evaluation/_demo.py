"""The README demo: sigmoid vs softmax `small` models on bundled PBMC 68k, on CPU."""

import json
import pathlib

import numpy as np


def evaluate_run(workdir, adata, labels: str = "cell_type") -> dict:
    """Validation loss, and embedding scores of every cell of `adata`, written to DIR/scores.json."""
    from sigjax.data import make_datasets
    from sigjax.evaluation._embed import embed_anndata
    from sigjax.evaluation._score import score_embedding
    from sigjax.training import evaluate_loss, load_model

    model, config, vocab = load_model(workdir)
    _, val_cells, _ = make_datasets(config.data, vocab=vocab)
    scores = {"val_loss": evaluate_loss(model, val_cells, config)}
    embedded, _ = embed_anndata(workdir, adata)
    scores.update(score_embedding(embedded.obsm["X_sigjax"], embedded.obs[labels]))
    (pathlib.Path(workdir) / "scores.json").write_text(json.dumps(scores, indent=2))
    return scores


def run_demo(out="runs/demo", config_name: str = "small", overrides: dict | None = None) -> str:
    """Trains sigmoid and softmax with identical budgets, seeds and data order, then compares."""
    import importlib

    from sigjax.data import load_dataset
    from sigjax.evaluation._runs import compare_runs
    from sigjax.evaluation._score import pca_baseline, score_embedding
    from sigjax.training import train_and_evaluate

    out = pathlib.Path(out)
    adata = load_dataset("pbmc68k_reduced")
    dirs = []
    for attention in ("sigmoid", "softmax"):
        config = importlib.import_module(f"configs.{config_name}").get_config()
        config.model.attention = attention
        config.train.progress_bar = True
        for k, v in (overrides or {}).items():
            section, field = k.split(".", 1)
            config[section][field] = v
        workdir = out / f"{config_name}_{attention}"
        print(f"== training {attention} ({config_name}) in {workdir}")
        train_and_evaluate(config, workdir)
        evaluate_run(workdir, adata)
        dirs.append(workdir)
    pca_baseline(adata)
    base = score_embedding(adata.obsm["X_pca_hvg"], adata.obs["cell_type"])
    print("PCA of log-normalised HVGs (baseline):", json.dumps({k: round(v, 4) for k, v in base.items()}))
    table = compare_runs(dirs, out)
    sig, soft = (json.loads((d / "scores.json").read_text()) for d in dirs)
    rel = {k: (sig[k] - soft[k]) / abs(soft[k]) for k in sig if abs(soft.get(k, 0.0)) > 1e-12}
    print("relative difference sigmoid vs softmax:", json.dumps({k: f"{v:+.1%}" for k, v in rel.items()}))
    np.seterr(all="ignore")
    return table
