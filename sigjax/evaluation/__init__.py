"""Evaluation of cell embeddings, run comparisons, stability plots and kernel benchmarks."""

from sigjax.evaluation._demo import evaluate_run, run_demo
from sigjax.evaluation._embed import EMBEDDING_KEY, as_counts, embed_anndata, embed_cells
from sigjax.evaluation._runs import compare_runs, read_metrics, stability_report, stability_summary
from sigjax.evaluation._score import pca_baseline, score_embedding, score_file, umap_png

__all__ = [
    "EMBEDDING_KEY", "as_counts", "compare_runs", "embed_anndata", "embed_cells", "evaluate_run",
    "pca_baseline", "read_metrics", "run_demo", "score_embedding", "score_file",
    "stability_report", "stability_summary", "umap_png",
]
