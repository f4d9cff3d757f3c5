"""A tiny model for a few steps on bundled PBMC 68k, on CPU in well under two minutes.

Run:
  python -m train --config=configs/smoke.py --workdir=runs/smoke
"""

from configs import default


def get_config(arg=None):
    c = default.get_config(arg)
    c.data.max_len = 128
    c.data.batch_size = 8
    c.data.eval_batch_size = 32
    c.model.num_layers = 1
    c.model.num_heads = 2
    c.model.embed_dim = 32
    c.model.mlp_dim = 64
    c.train.num_steps = 4
    c.train.warmup_steps = 2
    c.train.log_every = 1
    c.train.eval_every = 4
    c.train.checkpoint_every = 2
    c.train.progress_bar = False
    return c
