"""Evaluation of a finished training run: validation loss and embedding scores (DIR/scores.json)."""

import json
import logging
import pathlib

import numpy as np

log = logging.getLogger(__name__)

SCORES_FILE = "scores.json"
CELL_SETS = ("all", "val")


def _subsample_rows(rows: np.ndarray, max_cells: int | None, seed: int = 0):
    """At most max_cells of `rows`, a fixed random subset (in stored order); kept positions or
    None."""
    if not max_cells or len(rows) <= max_cells:
        return rows, None
    idx = np.sort(np.random.default_rng(seed).choice(len(rows), max_cells, replace=False))
    return rows[idx], idx


def evaluate_run(
    workdir,
    *,
    cells: str = "val",
    max_cells: int | None = None,
    baseline: bool = False,
    extra_poolings: tuple[str, ...] = (),
    umap: bool = False,
    write: bool = True,
) -> dict:
    """Validation loss and embedding scores of a run's latest checkpoint.

    The data come from the run's own config (config.json: data set, split seed, tokenisation), so
    the validation cells are exactly the ones held out in training. `val_loss` is
    `sigjax.training.evaluate_loss` on them (the objective, with fixed masks). The embedding
    (`model.embed`) is scored against the data set's cell-type labels with `score_embedding`
    (definitions in `sigjax.evaluation._score`); cells with unknown labels are left out.

    Scores of cells="val" cannot flatter the model: they are of the held-out cells, which it
    never trained on, with `knn_accuracy` predicting their labels from the training cells'
    embeddings. The baseline is PCA of log-normalised HVGs (`pca_baseline`) of the same cells,
    scored the same way (PCA is computed on all cells of the data set, without labels).

    Args:
      workdir: a training run directory.
      cells: "val" (the held-out cells; kNN accuracy against the training cells) or "all"
        (train + validation cells: the zero-shot setting of a model trained without labels).
      max_cells: score at most this many cells (a fixed random subset, seed 0); None = all.
      baseline: also score the PCA-of-HVG baseline on the same cells, under "pca_hvg/<score>".
      extra_poolings: also score the embedding pooled another way ("cls" or "mean"), under keys
        "<pooling>_pool/<score>". The other readout of the same model ("pooled" beside
        "decoder", and "decoder" beside "pooled" when the model has the decoder) is always
        scored too, under "<readout>_readout/<score>".
      umap: write DIR/umap.png, the scored cells' embedding coloured by label.
      write: write the result to DIR/scores.json.

    Returns:
      {"val_loss", "cells", "n_cells", silhouette, clisi, isolated_labels, knn_purity, nmi, ari,
      knn_accuracy ("val" only), "<readout>_readout/..."[, "pca_hvg/..."]}.

    Raises:
      FileNotFoundError: no run or checkpoint in workdir.
      ValueError: cells not in ("all", "val"), or data without at least two labelled types.
    """
    from sigjax.data import load_from_config, tokenize_with
    from sigjax.evaluation._embed import embed_cells
    from sigjax.evaluation._score import BASELINE_KEY, pca_baseline, score_embedding, umap_png
    from sigjax.model._config import POOLINGS
    from sigjax.training import evaluate_loss, load_model
    from sigjax.training._checkpoint import checked_split_rows

    if cells not in CELL_SETS:
        raise ValueError(f"cells: got {cells!r}, expected one of {CELL_SETS}")
    for pooling in extra_poolings:
        if pooling not in POOLINGS:
            raise ValueError(f"extra_poolings: got {pooling!r}, expected one of {list(POOLINGS)}")
    workdir = pathlib.Path(workdir)
    model, config, vocab = load_model(workdir)
    adata = load_from_config(config.data)
    tokens = tokenize_with(config.data, adata, vocab)  # One row per AnnData row.
    what = "data: the cells the run's config reads now"
    train_rows, val_rows = checked_split_rows(workdir, config.data, tokens, what)
    result = {"val_loss": float(evaluate_loss(model, tokens.subset(val_rows), config))}
    rows = val_rows if cells == "val" else np.sort(np.concatenate([train_rows, val_rows]))
    rows, _ = _subsample_rows(rows, max_cells)
    reference = train_rows if cells == "val" else None
    labels = tokens.labels

    def scores(embed_rows) -> dict:
        # embed_rows(rows) -> embeddings of those AnnData rows.
        if reference is None:
            return score_embedding(embed_rows(rows), labels[rows])
        return score_embedding(
            embed_rows(rows), labels[rows], embed_rows(reference), labels[reference]
        )

    def model_rows(pooling=None, readout=None):
        return lambda r: embed_cells(
            model, config, tokens.subset(r), pooling=pooling, readout=readout
        )

    result.update(cells=cells, n_cells=len(rows))
    result.update(scores(model_rows()))
    for pooling in extra_poolings:
        result.update({f"{pooling}_pool/{k}": v for k, v in scores(model_rows(pooling)).items()})
    other = "pooled" if model.config.readout == "decoder" else "decoder"
    if other == "pooled" or model.config.expression_weight > 0:
        extra = scores(model_rows(readout=other))
        result.update({f"{other}_readout/{k}": v for k, v in extra.items()})
    if baseline:
        # The baseline reads X as the run did (a run older than the field: detected).
        pca_baseline(adata, values=config.data.get("input_values") or "auto")
        pca = np.asarray(adata.obsm[BASELINE_KEY])
        result.update({f"pca_hvg/{k}": v for k, v in scores(lambda r: pca[r]).items()})
    if umap:
        import anndata as ad

        view = ad.AnnData(
            obs={"label": [tokens.label_names[c] if c >= 0 else "?" for c in labels[rows]]},
            obsm={"X_sigjax": embed_cells(model, config, tokens.subset(rows))},
        )
        umap_png(view, "X_sigjax", "label", workdir / "umap.png")
    if write:
        (workdir / SCORES_FILE).write_text(json.dumps(result, indent=2))
    return result
