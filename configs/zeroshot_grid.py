"""The zero-shot study (issue 15): pretrain on the pooled corpus, embed labelled sets never seen.

configs/pretrain_pooled.py (the ~25M model, 1,500 steps on ~30K unlabelled cells of six sets,
genes matched by symbol) x {sigmoid, softmax} x learning rates {3e-4, 1e-3, 3e-3} x seeds
{0, 1, 2} = 18 runs; each run then embeds PBMC 68k reduced and scMARK zero-shot
(`sigjax.evaluation.zeroshot`, PCA of the same cells beside it). Each attention is reported at
its own learning rate, the one with the lowest mean validation loss on the corpus' held-out
cells (label-free; sigjax/evaluation/_study.py). Zeisel and CBMC carry no gene symbols and
cannot be matched to a pooled vocabulary, so they are not listed. Records (run.json, metrics,
scores.json, zeroshot.json/.md) go to docs/data/zeroshot_grid/pooled/<run>/, the table between
the `<!-- study:zeroshot_grid -->` markers of docs/results.md. The LR 1e-3 runs are the
three-seed runs of docs/results.md "Zero-shot at GPU size", imported as records of this grid
(docs/probes/import_zeroshot_records.py: their configs equal this grid's cells but for
data.path), so those six runs are not trained again. The 12 runs at 3e-4 and 3e-3 are recorded
(seeds 0-1 on 2026-12-03, seed 2 on 2026-12-04): the grid is complete.

Run (H200; finished runs are skipped, so the same command resumes; the corpus packed with
`python -m eval pack-pooled --out=pooled.h5ad`, the labelled sets' archives in
$SIGJAX_DATA_DIR or --set=grid.source=FOLDER):
  python -m eval study --config=configs/zeroshot_grid.py --set=data.path=pooled.h5ad
One cell (four runs at once, one per rate and attention, took 327-355 s to train and 139-153 s
to score on one H200, docs/probes/run12_zeroshot_grid.sh):
  python -m eval study --config=configs/zeroshot_grid.py --set=data.path=pooled.h5ad \
    --attentions=sigmoid --learning_rates=3e-3 --seeds=0
The tables from the records alone:
  python -m eval study --config=configs/zeroshot_grid.py --report_only
"""

import ml_collections

from configs import pretrain_pooled


def get_config(arg=None):
    c = pretrain_pooled.get_config(arg)
    c.train.progress_bar = False
    c.grid = grid = ml_collections.ConfigDict()
    grid.name = "zeroshot_grid"  # Section name in the results file and records directory.
    grid.datasets = ("pooled",)  # Pretraining data: the pooled corpus (data.path may pack it).
    grid.zeroshot = ("pbmc68k_reduced", "scmark")  # Labelled sets embedded zero-shot.
    grid.source = ""  # Folder of the labelled sets' archives ("" = $SIGJAX_DATA_DIR / cache).
    grid.attentions = ("sigmoid", "softmax")
    grid.learning_rates = (3e-4, 1e-3, 3e-3)  # The sweep; each attention at its best.
    grid.seeds = (0, 1, 2)
    grid.max_cells = 0  # Cells embedded per labelled set (0 = all).
    grid.workdir = "runs/zeroshot_grid"  # Work directories (checkpoints; not committed).
    grid.record = "docs/data/zeroshot_grid"  # Run records and plots (committed).
    grid.results = "docs/results.md"
    grid.delete_checkpoints = True  # A run's record and zeroshot.json hold what the tables need.
    return c
