"""Evaluation: cell-embedding scores, run comparison, stability report, the demo and the study.

`embed(adata, workdir)` embeds an AnnData in memory (scanpy style: writes
`adata.obsm["X_sigjax"]`). Score definitions are in `sigjax.evaluation._score` (module
docstring); run evaluation in `evaluate_run`; stability numbers in `stability_summary`; study
statistics in `summarize`; grids of runs (resume, records) in `run_cell`; zero-shot embedding of
labelled sets by a pretrained run in `zeroshot`, and its mean over seeds in `zeroshot_summary`.
"""

from sigjax.evaluation._demo import run_demo
from sigjax.evaluation._embed import (
    EMBEDDING_KEY,
    as_counts,
    embed,
    embed_anndata,
    embed_cells,
    embed_file,
)
from sigjax.evaluation._evaluate import SCORES_FILE, evaluate_run
from sigjax.evaluation._grid import (
    Cell,
    grid_cells,
    grid_from_config,
    read_records,
    run_cell,
    run_config,
    shard_cells,
    use_compilation_cache,
)
from sigjax.evaluation._runs import (
    compare_runs,
    markdown_table,
    stability_report,
    stability_summary,
)
from sigjax.evaluation._score import (
    BASELINE_KEY,
    SCORE_NAMES,
    pca_baseline,
    score_embedding,
    score_file,
    umap_png,
)
from sigjax.evaluation._study import (
    beyond_spread,
    chosen_rows,
    lr_sweep,
    report_study,
    results_markdown,
    run_study,
    same_rate_summary,
    study_config,
    summarize,
    write_section,
    zeroshot_record_scores,
    zeroshot_rows,
    zeroshot_run_scores,
)
from sigjax.evaluation._zeroshot import (
    ZEROSHOT_DEFAULT,
    kfold_knn_accuracy,
    zeroshot,
    zeroshot_markdown,
    zeroshot_summary,
    zeroshot_summary_markdown,
)
from sigjax.training import read_metrics  # Re-exported: runs are read here.

__all__ = [
    "BASELINE_KEY",
    "EMBEDDING_KEY",
    "SCORES_FILE",
    "SCORE_NAMES",
    "ZEROSHOT_DEFAULT",
    "Cell",
    "as_counts",
    "beyond_spread",
    "chosen_rows",
    "compare_runs",
    "embed",
    "embed_anndata",
    "embed_cells",
    "embed_file",
    "evaluate_run",
    "grid_cells",
    "grid_from_config",
    "kfold_knn_accuracy",
    "lr_sweep",
    "markdown_table",
    "pca_baseline",
    "read_metrics",
    "read_records",
    "report_study",
    "results_markdown",
    "run_cell",
    "run_config",
    "run_demo",
    "run_study",
    "same_rate_summary",
    "score_embedding",
    "score_file",
    "shard_cells",
    "stability_report",
    "stability_summary",
    "study_config",
    "summarize",
    "umap_png",
    "use_compilation_cache",
    "write_section",
    "zeroshot",
    "zeroshot_markdown",
    "zeroshot_record_scores",
    "zeroshot_rows",
    "zeroshot_run_scores",
    "zeroshot_summary",
    "zeroshot_summary_markdown",
]
