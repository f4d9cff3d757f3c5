"""The representation study at GPU scale (issue 15): configs/base.py size, the issue-12 recipe.

Grid: PBMC 68k reduced, Zeisel, CBMC x {sigmoid, softmax} x learning rates {3e-4, 1e-3, 3e-3} x
seeds {0, 1, 2} = 54 runs of 1,000 steps, each attention reported at its own best learning rate
(lowest mean validation loss over seeds: label-free, so the held-out scores are not tuned on the
labels; see sigjax/evaluation/_study.py). Scores: kNN accuracy, kNN purity, NMI/ARI, silhouette
and cLISI on every held-out cell, against PCA of the same cells. Records (run.json with commit,
date, device; metrics.jsonl; scores.json) go to docs/data/study_base/, the table between the
`<!-- study:study_base -->` markers of docs/results.md, plots beside the records.

Run (H200; finished runs are skipped, so the same command resumes):
  python -m eval study --config=configs/study_base.py
Two GPUs, one process each, then the tables from every record:
  CUDA_VISIBLE_DEVICES=0 python -m eval study --config=configs/study_base.py --shard=0/2 &
  CUDA_VISIBLE_DEVICES=1 python -m eval study --config=configs/study_base.py --shard=1/2; wait
  python -m eval study --config=configs/study_base.py --report_only
One cell of the grid:
  python -m eval study --config=configs/study_base.py --datasets=zeisel --attentions=softmax \
    --learning_rates=1e-3 --seeds=2
"""

import ml_collections

from configs import base


def get_config(arg=None):
    c = base.get_config(arg)
    # The issue-12 recipe on real cells: configs/default.py's objective, norm and pooling (which
    # base.py keeps), configs/small.py's gene selection.
    c.data.dataset = "pbmc68k_reduced"
    c.data.max_len = 512  # Holds a cell's expressed HVGs (of 500).
    c.data.batch_size = 32
    c.data.eval_batch_size = 128
    c.data.gene_selection = "highly_variable"
    c.data.n_top_genes = 500
    c.data.val_fraction = 0.3  # Held-out cells: validation loss, LR choice and every score.
    c.train.num_steps = 1000
    c.train.warmup_steps = 100
    c.train.eval_every = 250  # The validation-loss curve: overfitting on the small sets shows.
    c.train.checkpoint_every = 500  # Resume points; a run is ~1-2 minutes on one H200.
    c.train.keep_checkpoints = 1  # 54 runs: keep the disk use to one checkpoint per run.
    c.train.log_every = 10
    c.train.progress_bar = False

    c.grid = grid = ml_collections.ConfigDict()
    grid.name = "study_base"  # Section name in the results file and records directory.
    grid.datasets = ("pbmc68k_reduced", "zeisel", "cbmc")  # Data sets (sigjax.data.DATASETS).
    grid.attentions = ("sigmoid", "softmax")  # Attentions compared.
    grid.learning_rates = (3e-4, 1e-3, 3e-3)  # The sweep; each attention at its best.
    grid.seeds = (0, 1, 2)  # Seeds of parameters, masks, split and batch order.
    grid.max_cells = 0  # Held-out cells scored per run (0 = all).
    grid.extra_poolings = ()  # Other poolings also scored ("cls"); the config's is always.
    grid.workdir = "runs/study_base"  # Work directories (checkpoints; not committed).
    grid.record = "docs/data/study_base"  # Run records and plots (committed).
    grid.results = "docs/results.md"  # Markdown file that gets the section.
    grid.delete_checkpoints = False  # Keep each run's checkpoint (~0.3 GB) for later embedding.
    return c
