"""A tiny pooled pretraining run for CPU tests (configs/pretrain_pooled.py at toy size).

Run (with the package archives in FOLDER, or none to use the cache):
  python -m train --config=configs/pretrain_pooled_tiny.py --workdir=runs/pooled_tiny \
    --config.data.path=FOLDER
  python -m eval zeroshot --workdir=runs/pooled_tiny --datasets=pbmc68k_reduced,scmark \
    --max_cells=300
"""

from configs import pretrain_pooled


def get_config(arg=None):
    c = pretrain_pooled.get_config(arg)
    c.data.min_cells = 1
    c.data.max_len = 64
    c.data.val_fraction = 0.2
    c.data.batch_size = 8
    c.data.eval_batch_size = 32
    c.model.num_layers = 1
    c.model.num_heads = 2
    c.model.embed_dim = 32
    c.model.mlp_dim = 64
    c.model.dtype = "float32"
    c.train.num_steps = 4
    c.train.warmup_steps = 2
    c.train.log_every = 2
    c.train.eval_every = 4
    c.train.checkpoint_every = 4
    c.train.progress_bar = False
    c.mesh.data = 1  # One device: a CPU test compiles once, not per simulated device.
    return c
