"""Scores of a cell embedding against cell-type labels, the PCA baseline, and the UMAP plot.

Every score is computed on the embedding as given (no scaling), with Euclidean distances; higher
is better for all of them. Exact definitions (scib-metrics 0.5.10, scikit-learn):

- `silhouette`: `scib_metrics.silhouette_label(X, labels, rescale=False)`: the mean over cells of
  the silhouette coefficient (b - a) / max(a, b), a = mean distance to cells of the same label,
  b = the smallest mean distance to the cells of another label; equal to
  `sklearn.metrics.silhouette_score`. Range [-1, 1].
- `clisi`: cLISI as `scib_metrics.clisi_knn(neighbours, labels)` with scale=True: the median over
  cells of the local inverse Simpson index (`scib_metrics.lisi_knn`) of the labels in a cell's 30
  exact nearest neighbours (Gaussian kernel weights at perplexity 10), rescaled as
  (L - median) / (L - 1) with L the number of labels. 1: every neighbourhood holds one label.
  Range [0, 1]. With few cells (fewer than 31) the neighbours are all other cells and the
  perplexity a third of them, at least 2 (scib-metrics' own choice, a third, falls to 1 and
  below, where every neighbourhood degenerates to one cell); a cell whose weights still
  concentrate on one neighbour (scib-metrics' sentinel -1) has a LISI of 1, and LISI is kept
  within [1, L], so the score stays within [0, 1].
- `isolated_labels`: `scib_metrics.isolated_labels(X, labels, batch, rescale=False)` with one
  dummy batch for all cells. With a single batch every label counts as "isolated", so this is the
  mean over labels of the mean silhouette coefficient (computed with all labels) of that label's
  cells: a class-balanced silhouette, in which rare types weigh as much as common ones.
  Range [-1, 1].
- `knn_purity`: the fraction of a cell's 15 exact nearest neighbours (itself excluded) that share
  its label, averaged over cells (scikit-learn `NearestNeighbors`). Range [0, 1].
- `knn_accuracy` (only with reference cells): a 15-nearest-neighbour majority-vote classifier
  (scikit-learn `KNeighborsClassifier`, uniform weights) fit on the reference (training) cells'
  embeddings and labels, scored as the fraction of the scored (held-out) cells whose label it
  predicts. Range [0, 1].
- `nmi`, `ari`: `scib_metrics.nmi_ari_cluster_labels_kmeans`: k-means (scib-metrics' JAX k-means,
  k-means++ init, seed 0) with k = the number of labels, then scikit-learn's normalised mutual
  information (arithmetic mean) and adjusted Rand index between clusters and labels. Ranges [0, 1]
  and [-0.5, 1].
"""

import json
import logging
import pathlib

import numpy as np
from jaxtyping import Float

log = logging.getLogger(__name__)

SCORE_NAMES = ("silhouette", "clisi", "isolated_labels", "knn_purity", "nmi", "ari")
BASELINE_KEY = "X_pca_hvg"


def _neighbors(x: np.ndarray, k: int):
    """Exact k nearest neighbours of every cell, the cell itself first (scib-metrics format)."""
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    k = min(k + 1, len(x))
    dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    return NeighborsResults(indices=idx, distances=dist)


def clisi(neighbors, codes: np.ndarray, n_labels: int) -> float:
    """cLISI scaled to [0, 1] (definition in the module docstring), safe for few cells.

    Args:
      neighbors: `_neighbors(x, 30)`: each cell's exact nearest neighbours, itself first.
      codes: int label codes 0..n_labels-1, one per cell.
      n_labels: number of labels L (>= 2).

    Returns:
      (L - median LISI) / (L - 1), in [0, 1].
    """
    import scib_metrics

    n_other = neighbors.indices.shape[1] - 1  # Neighbours besides the cell itself.
    perplexity = min(10.0, max(n_other / 3.0, min(2.0, float(n_other))))
    lisi = np.asarray(scib_metrics.lisi_knn(neighbors, codes, perplexity=perplexity), np.float64)
    # -1: scib-metrics' sentinel for a zero-entropy neighbourhood, i.e. all weight on one cell.
    lisi = np.clip(np.where(lisi > 0, lisi, 1.0), 1.0, n_labels)
    return float((n_labels - np.median(lisi)) / (n_labels - 1))


def _known(labels) -> tuple[np.ndarray, np.ndarray]:
    """Labels as strings, and which of them name a known type."""
    labels = np.asarray(labels).astype(str)
    return labels, ~np.isin(labels, ["-1", "nan", ""])


def knn_accuracy(train_x, train_labels, x, labels, k: int = 15) -> float:
    """Accuracy of a k-nearest-neighbour classifier fit on (train_x, train_labels), on (x, labels).

    Cells with unknown labels (see `score_embedding`) are left out on both sides.

    Args:
      train_x: [R, E] reference embeddings (training cells).
      train_labels: [R] their labels.
      x: [C, E] embeddings of the cells to classify (held-out cells).
      labels: [C] their true labels.
      k: neighbours (capped at the number of reference cells).

    Returns:
      The fraction of cells whose predicted label is right.

    Raises:
      ValueError: mismatched shapes, or no labelled cell on either side.
    """
    from sklearn.neighbors import KNeighborsClassifier

    train_x, x = np.asarray(train_x, np.float32), np.asarray(x, np.float32)
    if train_x.ndim != 2 or x.ndim != 2 or train_x.shape[1] != x.shape[1]:
        raise ValueError(
            f"embeddings: got shapes {train_x.shape} (reference) and {x.shape}; expected "
            "[cells, features] with the same features"
        )
    train_labels, train_ok = _known(train_labels)
    labels, ok = _known(labels)
    if len(train_labels) != len(train_x) or len(labels) != len(x):
        raise ValueError(
            f"labels: got {len(train_labels)} and {len(labels)} labels for {len(train_x)} and "
            f"{len(x)} cells; expected one per cell"
        )
    if not train_ok.any() or not ok.any():
        raise ValueError("labels: got no labelled cell; expected some on both sides")
    clf = KNeighborsClassifier(n_neighbors=min(k, int(train_ok.sum())))
    clf.fit(train_x[train_ok], train_labels[train_ok])
    return float(np.mean(clf.predict(x[ok]) == labels[ok]))


def score_embedding(
    x: Float[np.ndarray, "C E"], labels, train_x=None, train_labels=None
) -> dict[str, float]:
    """The scores defined in this module's docstring, for one embedding.

    Args:
      x: the embedding, one row per cell (held-out cells, for an honest score).
      labels: [C] cell-type labels (strings or ints); cells labelled -1, "-1", "nan" or "" are
        left out (unknown type).
      train_x: optional [R, E] embedding of reference (training) cells: adds `knn_accuracy`.
      train_labels: [R] labels of the reference cells (with train_x).

    Returns:
      {"silhouette", "clisi", "isolated_labels", "knn_purity", "nmi", "ari"} as floats, and
      "knn_accuracy" when reference cells are given.

    Raises:
      ValueError: x is not 2-D or not finite, a label count that differs from the cell count, or
        fewer than two labelled types or three labelled cells.
    """
    import scib_metrics

    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"embedding: got shape {x.shape}, expected [cells, features]")
    labels = np.asarray(labels).astype(str)
    if len(x) != len(labels):
        raise ValueError(
            f"labels: got {len(labels)} labels for {len(x)} cells; expected one per cell"
        )
    known = ~np.isin(labels, ["-1", "nan", ""])
    x, labels = x[known], labels[known]
    if not np.all(np.isfinite(x)):
        raise ValueError("embedding: got non-finite values; expected a finite embedding")
    codes = np.unique(labels, return_inverse=True)[1].astype(np.int32)
    if len(x) < 3 or codes.max(initial=0) < 1:
        raise ValueError(
            f"labels: got {len(np.unique(labels))} label(s) on {len(x)} labelled cells; expected "
            "at least two cell types and three cells"
        )
    nn30 = _neighbors(x, 30)
    nn15 = _neighbors(x, 15)
    n_labels = int(codes.max()) + 1
    same = codes[nn15.indices[:, 1:]] == codes[:, None]
    scores = {
        "silhouette": float(scib_metrics.silhouette_label(x, codes, rescale=False)),
        "clisi": clisi(nn30, codes, n_labels),
        "isolated_labels": float(
            scib_metrics.isolated_labels(x, codes, np.zeros(len(x), np.int32), rescale=False)
        ),
        "knn_purity": float(same.mean()),
    }
    nmi_ari = scib_metrics.nmi_ari_cluster_labels_kmeans(x, codes)
    scores.update({k: float(v) for k, v in nmi_ari.items()})
    if train_x is not None:
        scores["knn_accuracy"] = knn_accuracy(train_x, train_labels, x, labels)
    return scores


def pca_baseline(
    adata,
    n_top_genes: int = 2000,
    n_comps: int = 50,
    key: str = BASELINE_KEY,
    values: str = "auto",
):
    """The usual zero-shot baseline: PCA of log-normalised highly variable genes (scanpy).

    X is read as `values` says, as training and embedding read it (see `as_counts`); then
    `normalize_total(target_sum=1e4)`, `log1p`, `highly_variable_genes(flavor="seurat",
    n_top_genes=min(2000, genes - 1))`, `pca(n_comps=min(50, cells - 1, HVGs - 1))` on the HVGs.

    Args:
      adata: AnnData with counts (or log-normalised values) in X; modified in place.
      n_top_genes: highly variable genes kept.
      n_comps: principal components.
      key: `obsm` key written.
      values: what X holds: one of `sigjax.data.VALUES`.

    Returns:
      adata, with `obsm[key]` [C, n_comps].

    Raises:
      ValueError: negative or non-finite values in X (e.g. scaled data).
    """
    import scanpy as sc

    from sigjax.evaluation._embed import as_counts

    work = as_counts(adata, values).copy()
    if work.X.dtype == np.float16:  # scanpy would normalise and log in half precision.
        work.X = work.X.astype(np.float32)
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    sc.pp.highly_variable_genes(
        work, n_top_genes=min(n_top_genes, work.n_vars - 1), flavor="seurat"
    )
    n = min(n_comps, work.n_obs - 1, int(work.var["highly_variable"].sum()) - 1)
    sc.pp.pca(work, n_comps=n, mask_var="highly_variable", random_state=0)
    adata.obsm[key] = np.asarray(work.obsm["X_pca"])
    return adata


def umap_png(adata, embedding: str, labels: str, path) -> None:
    """Writes a UMAP of `obsm[embedding]` coloured by `obs[labels]` as a PNG (scanpy, 15
    neighbours, random_state 0).

    Args:
      adata: AnnData holding the embedding and labels.
      embedding: `obsm` key.
      labels: `obs` column.
      path: the PNG file written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc

    work = adata.copy()
    work.obs[labels] = work.obs[labels].astype(str).astype("category")
    sc.pp.neighbors(work, use_rep=embedding, n_neighbors=15, random_state=0)
    sc.tl.umap(work, random_state=0)
    fig = sc.pl.umap(
        work, color=labels, show=False, return_fig=True, title=f"{embedding} by {labels}"
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def heldout_rows(workdir, adata) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `adata` that the run in `workdir` trained on and held out, when `adata` holds
    that run's training cells in their order (e.g. its data file after `eval embed`).

    The values and gene ids are read from where the run read them (its `data.layer`,
    `data.use_raw`, `data.gene_column`): which cells have a gene in the vocabulary decides the
    split, so X in place of the run's counts could shift it.

    Returns:
      (train_rows, val_rows), as `sigjax.data.split_rows` gives them in training.

    Raises:
      FileNotFoundError: `workdir` is not a run.
      ValueError: `adata` holds other cells, or another order, than the run split (checked
        against the run's split.json; runs saved before it existed are not checked).
    """
    import ml_collections

    from sigjax.data import Vocab, tokenize_with
    from sigjax.evaluation._embed import _source
    from sigjax.training._checkpoint import (
        CONFIG_FILE,
        VOCAB_FILE,
        checked_split_rows,
        read_saved_config,
    )

    workdir = pathlib.Path(workdir)
    if not (workdir / CONFIG_FILE).exists():
        raise FileNotFoundError(f"--heldout: no {CONFIG_FILE} in {workdir}; expected a run")
    config = ml_collections.ConfigDict(read_saved_config(workdir / CONFIG_FILE))
    d = config.data
    source, _, _ = _source(
        adata, d.get("layer") or None, d.get("use_raw", False), d.get("gene_column") or None
    )
    tokens = tokenize_with(d, source, Vocab.load(workdir / VOCAB_FILE))
    return checked_split_rows(workdir, d, tokens, "--heldout: the cells of --data")


def score_file(
    data_path, labels: str, embedding: str = "X_sigjax", umap: bool = True, heldout=None
) -> dict:
    """`python -m eval score`: scores an embedding in an .h5ad and the PCA baseline of its X.

    With `heldout` (a run directory), only the cells that run held out are scored (it never
    trained on them), with kNN accuracy from the cells it trained on; the file must hold the
    run's training cells in their order. The PCA baseline is scored on the same cells.

    Writes `<data>.scores.json` ({embedding: scores, "X_pca_hvg": scores}) and, with `umap`,
    `<data>.umap.png` beside the input. The baseline needs counts or log-normalised values in X;
    when X holds something else (scaled data) its entry is {"error": reason} and the main scores
    are still written.

    Args:
      data_path: an .h5ad file (e.g. written by `python -m eval embed`).
      labels: the `obs` column with cell-type labels.
      embedding: the `obsm` key to score.
      umap: also write the UMAP PNG.
      heldout: a run directory: score its held-out cells only.

    Returns:
      The dict written to the JSON file.

    Raises:
      FileNotFoundError: no such file.
      ValueError: a file that is not AnnData, unknown label column or embedding key, a
        `heldout` run that held out no cell, or bad labels (see `score_embedding`).
    """
    from sigjax.data._anndata import read_h5ad

    path = pathlib.Path(data_path)
    adata = read_h5ad(path, arg="--data")
    if labels not in adata.obs.columns:
        raise ValueError(f"--labels: got {labels!r}, expected one of {list(adata.obs.columns)}")
    if embedding not in adata.obsm:
        raise ValueError(
            f"--embedding: got {embedding!r}, expected one of {list(adata.obsm.keys())}"
        )
    cell_labels = np.asarray(adata.obs[labels])

    def scores(x) -> dict:
        x = np.asarray(x)
        if heldout is None:
            return score_embedding(x, cell_labels)
        return score_embedding(x[val], cell_labels[val], x[train], cell_labels[train])

    if heldout is not None:
        train, val = heldout_rows(heldout, adata)
        if not len(val):
            raise ValueError(
                f"--heldout: {str(heldout)!r} held out no cell of {str(path)!r} (its "
                "data.val_fraction of too few cells); expected a run with validation cells, or "
                "score without --heldout"
            )
        print(f"scoring the {len(val)} cells {heldout} held out ({len(train)} trained on)")
    result = {embedding: scores(adata.obsm[embedding])}
    if embedding != BASELINE_KEY:
        try:
            pca_baseline(adata)
            result[BASELINE_KEY] = scores(adata.obsm[BASELINE_KEY])
        except ValueError as e:  # X holds no counts (e.g. scaled): report it, keep the main scores.
            log.warning("PCA baseline skipped: %s", e)
            result[BASELINE_KEY] = {"error": str(e)}
    out = path.with_suffix(".scores.json")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    if umap:
        umap_png(adata, embedding, labels, path.with_suffix(".umap.png"))
        print(f"wrote {path.with_suffix('.umap.png')}")
    return result
