"""The stress-test mechanism at CPU size: no clipping, a high learning rate, long-ish cells.

Run:
  python -m train --config=configs/stress_tiny.py --workdir=runs/tiny_sigmoid
  python -m train --config=configs/stress_tiny.py --workdir=runs/tiny_softmax \
    --config.model.attention=softmax
  python -m eval stability runs/tiny_sigmoid runs/tiny_softmax --out=runs/tiny_stability
"""

from configs import default


def get_config(arg=None):
    c = default.get_config(arg)
    c.data.dataset = "synthetic"
    c.data.max_len = 512
    c.data.batch_size = 8
    c.data.synthetic.n_cells = 400
    c.data.synthetic.n_genes = 2000
    c.data.synthetic.min_genes = 300
    c.data.synthetic.max_genes = 511
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.embed_dim = 64
    c.model.mlp_dim = 256
    c.train.num_steps = 150
    c.train.learning_rate = 1e-2
    c.train.warmup_steps = 10
    c.train.weight_decay = 0.0
    c.train.grad_clip_norm = 0.0
    c.train.log_every = 1
    c.train.eval_every = 0
    c.train.checkpoint_every = 50
    return c
