"""Evaluation of a finished training run: validation loss and embedding scores (DIR/scores.json)."""

import json
import logging
import pathlib

import numpy as np

log = logging.getLogger(__name__)

SCORES_FILE = "scores.json"
CELL_SETS = ("all", "val")


def _subsample(cells, max_cells: int | None, seed: int = 0):
    """At most max_cells cells, a fixed random subset (in stored order); indices kept or None."""
    if not max_cells or len(cells) <= max_cells:
        return cells, None
    idx = np.sort(np.random.default_rng(seed).choice(len(cells), max_cells, replace=False))
    return cells.subset(idx), idx


def evaluate_run(
    workdir,
    *,
    cells: str = "all",
    max_cells: int | None = None,
    baseline: bool = False,
    extra_poolings: tuple[str, ...] = (),
    write: bool = True,
) -> dict:
    """Validation loss and embedding scores of a run's latest checkpoint.

    The data come from the run's own config (config.json: data set, split seed, tokenisation), so
    the validation cells are exactly the ones held out in training. `val_loss` is
    `sigjax.training.evaluate_loss` on them (mean masked-expression loss over masked tokens, fixed
    masks). The embedding (`model.embed`: CLS or mean pooling per the config) is scored against the
    data set's cell-type labels with `score_embedding` (definitions in `sigjax.evaluation._score`);
    cells with unknown labels are left out of the scores.

    Args:
      workdir: a training run directory.
      cells: "all" (train + validation cells, the usual zero-shot setting: labels are never used in
        training) or "val" (the held-out cells only).
      max_cells: score at most this many cells (a fixed random subset, seed 0); None = all.
      baseline: also score the PCA-of-HVG baseline (`pca_baseline`) on the same cells, under
        keys "pca_hvg/<score>" ("all" only: it needs the AnnData in the same order).
      extra_poolings: also score the embedding pooled another way ("cls" or "mean"), under keys
        "<pooling>_pool/<score>". Pooling only acts at embedding time (the training loss does not
        use the cell embedding), so one trained model can be scored both ways.
      write: write the result to DIR/scores.json.

    Returns:
      {"val_loss", "cells", "n_cells", silhouette, clisi, isolated_labels, knn_purity,
      nmi, ari[, "pca_hvg/..."]}.

    Raises:
      FileNotFoundError: no run or checkpoint in workdir.
      ValueError: cells not in ("all", "val"), or data without at least two labelled types.
    """
    from sigjax.data import load_from_config, make_datasets, tokenize_with
    from sigjax.evaluation._embed import embed_cells
    from sigjax.evaluation._score import BASELINE_KEY, pca_baseline, score_embedding
    from sigjax.model._config import POOLINGS
    from sigjax.training import evaluate_loss, load_model

    if cells not in CELL_SETS:
        raise ValueError(f"cells: got {cells!r}, expected one of {CELL_SETS}")
    workdir = pathlib.Path(workdir)
    model, config, vocab = load_model(workdir)
    _, val_cells, _ = make_datasets(config.data, vocab=vocab)
    result = {"val_loss": float(evaluate_loss(model, val_cells, config))}
    adata = None
    if cells == "val":
        target = val_cells
    else:
        adata = load_from_config(config.data)
        target = tokenize_with(config.data, adata, vocab)
    target, idx = _subsample(target, max_cells)
    embedding = embed_cells(model, config, target)
    result.update(cells=cells, n_cells=len(target))
    result.update(score_embedding(embedding, target.labels))
    for pooling in extra_poolings:
        if pooling not in POOLINGS:
            raise ValueError(f"extra_poolings: got {pooling!r}, expected one of {list(POOLINGS)}")
        pooled = score_embedding(embed_cells(model, config, target, pooling=pooling), target.labels)
        result.update({f"{pooling}_pool/{k}": v for k, v in pooled.items()})
    if baseline and adata is not None:
        # The baseline reads X as the run did (a run older than the field: detected).
        pca_baseline(adata, values=config.data.get("input_values") or "auto")
        x = adata.obsm[BASELINE_KEY] if idx is None else adata.obsm[BASELINE_KEY][idx]
        base = score_embedding(x, target.labels)
        result.update({f"pca_hvg/{k}": v for k, v in base.items()})
    if write:
        (workdir / SCORES_FILE).write_text(json.dumps(result, indent=2))
    return result
