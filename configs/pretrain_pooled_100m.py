"""~110M-parameter model pretrained on the pooled real corpus, for zero-shot (issue 15).

`configs/pretrain_pooled.py` (the base model: 8 blocks of width 512; 25.2M parameters in the
blocks, 40.8M in all) in BERT-base's shape: 12 pre-LN blocks of width 768 (12 heads of 64, MLP
3,072): 85.1M in the blocks, 108.6M in all with the gene embedding and expression decoder over
the corpus' 29,807 tokens. Same corpus, tokens, steps, objective, recipe and learning rate (1e-3,
not swept at either size) as the base runs, so the two sizes differ in shape only.

Run (one model per attention and seed; on one H200 two runs at once took 0.213-0.217 s a step
each, ~425 s for 1,500 steps with compilation, 2026-12-03, docs/results.md "Zero-shot at ~110M"):
  python -m train --config=configs/pretrain_pooled_100m.py --workdir=runs/pooled100m_sigmoid \
    --config.data.path=pooled.h5ad
  python -m eval zeroshot --workdir=runs/pooled100m_sigmoid \
    --datasets=pbmc68k_reduced,scmark,zeisel,cbmc
On the lent GPU machine: CONFIG=configs/pretrain_pooled_100m.py in docs/probes/run10_pooled.sh.
"""

from configs import pretrain_pooled


def get_config(arg=None):
    c = pretrain_pooled.get_config(arg)
    c.model.num_layers = 12
    c.model.num_heads = 12
    c.model.embed_dim = 768
    c.model.mlp_dim = 3072
    return c
