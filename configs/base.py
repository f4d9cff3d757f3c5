"""~25M-parameter model for the GPU (bf16, Pallas sigmoid kernel), synthetic cells up to 2K tokens.

Run:
  python -m train --config=configs/base.py --workdir=runs/base_sigmoid
  python -m train --config=configs/base.py --workdir=runs/base_softmax \
    --config.model.attention=softmax
  8K tokens: --config.data.max_len=8192 --config.data.synthetic.min_genes=7000 \
    --config.data.synthetic.max_genes=8191 --config.data.synthetic.n_genes=12000 \
    --config.data.batch_size=8
"""

from configs import default


def get_config(arg=None):
    c = default.get_config(arg)
    c.data.dataset = "synthetic"
    c.data.max_len = 2048
    c.data.batch_size = 32
    c.data.synthetic.n_cells = 4000
    c.data.synthetic.n_genes = 6000
    c.data.synthetic.min_genes = 1500
    c.data.synthetic.max_genes = 2047
    c.model.num_layers = 8
    c.model.num_heads = 8
    c.model.embed_dim = 512
    c.model.mlp_dim = 2048
    c.model.dtype = "bfloat16"
    c.train.num_steps = 300
    c.train.learning_rate = 3e-4
    c.train.warmup_steps = 50
    c.train.log_every = 10
    c.train.eval_every = 0
    c.train.checkpoint_every = 1000
    return c
