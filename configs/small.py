"""CPU demo size: sigmoid vs softmax on bundled PBMC 68k, a few minutes each on 2 cores.

Run:
  python -m train --config=configs/small.py --workdir=runs/small_sigmoid
  python -m train --config=configs/small.py --workdir=runs/small_softmax \
    --config.model.attention=softmax
"""

from configs import default


def get_config(arg=None):
    c = default.get_config(arg)
    c.data.max_len = 256
    c.data.batch_size = 16
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.embed_dim = 64
    c.model.mlp_dim = 256
    c.train.num_steps = 300
    c.train.learning_rate = 1e-3
    c.train.warmup_steps = 30
    c.train.log_every = 10
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    return c
