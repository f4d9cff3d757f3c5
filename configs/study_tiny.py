"""configs/study_base.py's grid at CPU-test size: 1 data set x 2 attentions x 2 LRs x 2 seeds.

Eight runs of a 1-block, width-32 model for 4 steps on bundled PBMC 68k; used by
tests/evaluation/test_study_grid.py to check resume and the results table, not to measure.

Run:
  python -m eval study --config=configs/study_tiny.py
"""

from configs import study_base


def get_config(arg=None):
    c = study_base.get_config(arg)
    c.data.max_len = 64
    c.data.batch_size = 8
    c.data.eval_batch_size = 64
    c.data.n_top_genes = 64
    c.model.num_layers = 1
    c.model.num_heads = 2
    c.model.embed_dim = 32
    c.model.mlp_dim = 64
    c.model.dtype = "float32"
    c.train.num_steps = 4
    c.train.warmup_steps = 1
    c.train.eval_every = 4
    c.train.checkpoint_every = 4
    c.train.log_every = 2
    c.grid.name = "study_tiny"
    c.grid.datasets = ("pbmc68k_reduced",)
    c.grid.learning_rates = (1e-3, 3e-3)
    c.grid.seeds = (0, 1)
    c.grid.max_cells = 100
    c.grid.workdir = "runs/study_tiny"
    c.grid.record = "runs/study_tiny/record"
    c.grid.results = "runs/study_tiny/results.md"
    return c
