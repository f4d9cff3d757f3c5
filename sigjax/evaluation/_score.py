"""Scores of a cell embedding against cell-type labels, and the PCA baseline.

Definitions (all on the embedding's Euclidean geometry):
- `silhouette`: scib-metrics `silhouette_label(rescale=False)`, i.e. scikit-learn's mean silhouette
  coefficient of the cell-type labels, in [-1, 1] (cell-type separation; higher is better).
- `clisi`: scib-metrics `clisi_knn` on a 30-nearest-neighbour graph, scaled to [0, 1] (1: a cell's
  neighbourhood holds only its own type; cohesion).
- `isolated_labels`: scib-metrics `isolated_labels(rescale=False)` with one dummy batch: silhouette of
  the labels present in the fewest cells against the rest.
- `knn_purity`: fraction of each cell's 15 nearest neighbours (itself excluded) of its own type,
  averaged over cells.
- `nmi`, `ari`: scib-metrics `nmi_ari_cluster_labels_kmeans`: k-means with k = number of labels,
  compared with the labels.
"""

import json
import logging
import pathlib

import numpy as np

log = logging.getLogger(__name__)


def _neighbors(x: np.ndarray, k: int):
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    k = min(k + 1, len(x))
    dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    return NeighborsResults(indices=idx, distances=dist)


def score_embedding(x: np.ndarray, labels) -> dict:
    """The scores above for embedding `x` [C, E] and labels [C] (strings or ints).

    Raises:
      ValueError: mismatched sizes or fewer than two labels.
    """
    import scib_metrics

    x = np.asarray(x, np.float32)
    labels = np.asarray(labels).astype(str)
    if len(x) != len(labels):
        raise ValueError(f"labels: got {len(labels)} labels for {len(x)} cells; expected one per cell")
    codes = np.unique(labels, return_inverse=True)[1]
    if codes.max() < 1:
        raise ValueError("labels: got a single label; expected at least two cell types")
    nn30 = _neighbors(x, 30)
    nn15 = _neighbors(x, 15)
    same = codes[nn15.indices[:, 1:]] == codes[:, None]
    scores = {
        "silhouette": float(scib_metrics.silhouette_label(x, codes, rescale=False)),
        "clisi": float(scib_metrics.clisi_knn(nn30, codes)),
        "isolated_labels": float(
            scib_metrics.isolated_labels(x, codes, np.zeros(len(x), int), rescale=False)
        ),
        "knn_purity": float(same.mean()),
    }
    scores.update({k: float(v) for k, v in scib_metrics.nmi_ari_cluster_labels_kmeans(x, codes).items()})
    return scores


def pca_baseline(adata, n_top_genes: int = 2000, n_comps: int = 50, key: str = "X_pca_hvg"):
    """The field's zero-shot baseline: PCA of log-normalised highly variable genes (scanpy)."""
    import scanpy as sc

    from sigjax.evaluation._embed import as_counts

    work = as_counts(adata)
    work = work.copy()
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    sc.pp.highly_variable_genes(work, n_top_genes=min(n_top_genes, work.n_vars - 1), flavor="seurat")
    n = min(n_comps, work.n_obs - 1, int(work.var["highly_variable"].sum()) - 1)
    sc.pp.pca(work, n_comps=n, mask_var="highly_variable")
    adata.obsm[key] = work.obsm["X_pca"]
    return adata


def umap_png(adata, embedding: str, labels: str, path) -> None:
    """A UMAP of the embedding coloured by label, as PNG (scanpy)."""
    import matplotlib

    matplotlib.use("Agg")
    import scanpy as sc

    work = adata.copy()
    sc.pp.neighbors(work, use_rep=embedding, n_neighbors=15)
    sc.tl.umap(work, random_state=0)
    fig = sc.pl.umap(work, color=labels, show=False, return_fig=True, title=f"{embedding} by {labels}")
    fig.savefig(path, dpi=120, bbox_inches="tight")


def score_file(data_path, labels: str, embedding: str = "X_sigjax", umap: bool = True) -> dict:
    """`python -m eval score`: scores an embedding in an .h5ad (and the PCA baseline), writes
    `<data>.scores.json` and `<data>.umap.png` beside it.

    Raises:
      ValueError: unknown label column or embedding key.
    """
    import anndata as ad

    path = pathlib.Path(data_path)
    if not path.is_file():
        raise FileNotFoundError(f"--data: no such file: {path}")
    adata = ad.read_h5ad(path)
    if labels not in adata.obs.columns:
        raise ValueError(f"--labels: got {labels!r}, expected one of {list(adata.obs.columns)}")
    if embedding not in adata.obsm:
        raise ValueError(f"--embedding: got {embedding!r}, expected one of {list(adata.obsm.keys())}")
    result = {embedding: score_embedding(adata.obsm[embedding], adata.obs[labels])}
    try:
        pca_baseline(adata)
        result["X_pca_hvg"] = score_embedding(adata.obsm["X_pca_hvg"], adata.obs[labels])
    except ValueError as e:  # e.g. counts not available in X: report, keep the main scores.
        log.warning("PCA baseline skipped: %s", e)
        result["X_pca_hvg"] = {"error": str(e)}
    out = path.with_suffix(".scores.json")
    out.write_text(json.dumps(result, indent=2))
    if umap:
        umap_png(adata, embedding, labels, path.with_suffix(".umap.png"))
    return result
