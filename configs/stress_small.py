"""The learning-rate sweep of the stress test at a smaller size: where does each attention's
stable region end?

22.0M parameters (6 pre-LN blocks of width 512, 8 heads of 64, MLP 2048), 2K-token synthetic cells,
no gradient clipping, no weight decay, 20 warmup steps: the stress settings of stress_160m.py at a
size where one GPU runs all eight sweep points at once. Only learning_rate and model.attention
change between runs.

Run (one point; the sweep repeats it for learning rates 1e-3, 3e-3, 1e-2, 3e-2):
  python -m train --config=configs/stress_small.py --workdir=runs/sweep_sigmoid_1e-2 \
    --config.train.learning_rate=1e-2
  python -m train --config=configs/stress_small.py --workdir=runs/sweep_softmax_1e-2 \
    --config.train.learning_rate=1e-2 --config.model.attention=softmax
  python -m eval stability runs/sweep_* --out=runs/sweep_plots
"""

from configs import default


def get_config(arg=None):
    c = default.get_config(arg)
    c.data.dataset = "synthetic"
    c.data.max_len = 2048
    c.data.batch_size = 16
    c.data.val_fraction = 0.02
    c.data.synthetic.n_cells = 2000
    c.data.synthetic.n_genes = 6000
    c.data.synthetic.min_genes = 1500
    c.data.synthetic.max_genes = 2047
    c.model.num_layers = 6
    c.model.num_heads = 8
    c.model.embed_dim = 512
    c.model.mlp_dim = 2048
    c.model.dtype = "bfloat16"
    c.train.num_steps = 300
    c.train.learning_rate = 1e-2
    c.train.warmup_steps = 20
    c.train.weight_decay = 0.0
    c.train.grad_clip_norm = 0.0
    c.train.log_every = 1
    c.train.eval_every = 0
    c.train.checkpoint_every = 1000
    return c
