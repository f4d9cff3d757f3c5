"""The 160M stability grid (issue 15): configs/stress_160m.py x attentions x learning rates x seeds.

{sigmoid, softmax} x peak learning rates {1e-3, 3e-3, 1e-2} x seeds {0, 1, 2} = 18 runs of 600
steps: 161.5M parameters, 8K-token cells, no gradient clipping, 50 warmup steps, the default
(issue-9/12) objective. At ~0.35 s/step a run takes ~4 minutes on one H200. A run is stable when it
logs no non-finite value and its gradient norm never exceeds 10x its running median
(`python -m eval stability`, sigjax/evaluation/_runs.py); the update ratios show whether a stable
run still trains. Records (run.json with commit, date, device; metrics.jsonl; config.json) go to
docs/data/stress_160m_grid/, the plots and tables to docs/data/stability/stress_160m_grid/.

Run (H200; finished runs are skipped, so the same command resumes):
  python -m eval stability --config=configs/stress_160m_grid.py
Two GPUs, one process each, then the report from every record:
  CUDA_VISIBLE_DEVICES=0 python -m eval stability --config=configs/stress_160m_grid.py --shard=0/2 &
  CUDA_VISIBLE_DEVICES=1 python -m eval stability --config=configs/stress_160m_grid.py --shard=1/2
  wait; python -m eval stability --config=configs/stress_160m_grid.py --report_only
One cell:
  python -m eval stability --config=configs/stress_160m_grid.py --attentions=softmax \
    --learning_rates=1e-2 --seeds=0
"""

import ml_collections

from configs import stress_160m


def get_config(arg=None):
    c = stress_160m.get_config(arg)
    c.train.num_steps = 600
    c.train.eval_every = 200  # Validation loss ("better" is judged on it, not on training loss).
    c.train.checkpoint_every = 200  # Resume points.
    c.train.keep_checkpoints = 1  # ~2 GB each at 160M with Adam moments.
    c.train.progress_bar = False

    c.grid = grid = ml_collections.ConfigDict()
    grid.name = "stress_160m_grid"  # Names the record and report directories.
    grid.attentions = ("sigmoid", "softmax")  # Attentions compared.
    grid.learning_rates = (1e-3, 3e-3, 1e-2)  # Peak learning rates (no clipping).
    grid.seeds = (0, 1, 2)  # Seeds of parameters, masks and batch order.
    grid.workdir = "runs/stress_160m_grid"  # Work directories (checkpoints; not committed).
    grid.record = "docs/data/stress_160m_grid"  # Run records (committed).
    grid.report = "docs/data/stability/stress_160m_grid"  # stability.png, .md, .json.
    grid.delete_checkpoints = True  # A finished run's checkpoints go: 18 x ~2 GB otherwise.
    return c
