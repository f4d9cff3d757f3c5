"""The paper's stability stress test: ~160M parameters, 8,192-token cells, no gradient clipping.

Learning rate 1e-3 with a 50-step warmup and no clipping is deliberately aggressive for a
12-layer, 768-wide post-warmup model (typical: 1e-4 to 3e-4 with clipping at 1.0); everything
except model.attention is identical between the two runs.

Run (H200, bf16; sigmoid uses the Pallas kernel, softmax cuDNN):
  python -m train --config=configs/stress_160m.py --workdir=runs/stress_sigmoid
  python -m train --config=configs/stress_160m.py --workdir=runs/stress_softmax --config.model.attention=softmax
  python -m eval stability runs/stress_sigmoid runs/stress_softmax --out=docs/stability
"""

from configs import default


def get_config(arg=None):
    c = default.get_config(arg)
    c.data.dataset = "synthetic"
    c.data.max_len = 8192
    c.data.batch_size = 8
    c.data.val_fraction = 0.02
    c.data.synthetic.n_cells = 1200
    c.data.synthetic.n_genes = 30000
    c.data.synthetic.min_genes = 7000
    c.data.synthetic.max_genes = 8191
    c.model.num_layers = 12
    c.model.num_heads = 12
    c.model.embed_dim = 768
    c.model.mlp_dim = 3072
    c.model.dtype = "bfloat16"
    c.train.num_steps = 600
    c.train.learning_rate = 1e-3
    c.train.warmup_steps = 50
    c.train.weight_decay = 0.0
    c.train.grad_clip_norm = 0.0
    c.train.log_every = 1
    c.train.eval_every = 0
    c.train.checkpoint_every = 100
    return c
