"""CPU size of configs/pretrain_pooled.py: the pooled real corpus, then zero-shot embedding.

The model, objective and recipe of configs/small.py (2 layers, width 64, binned input with random
ties, expression decoder beside the masked loss, hybrid norm), pretrained on the pooled corpus
(~31.8K unlabelled cells of six sets, genes matched by upper-case symbol; see
configs/pretrain_pooled.py) with each cell's top 512 expressed genes; the labelled sets stay unseen
and are embedded zero-shot afterwards, next to PCA of the same cells. On 2 CPU cores: 0.55 s per
full-batch step with one run alone (a 40-step check), 31-37 minutes per run with both attentions
at once (docs/results.md, "Zero-shot at CPU size").

Run (pack the corpus once where the package archives can be had, then train offline on it):
  python -m eval pack-pooled --out=pooled.h5ad
  python -m train --config=configs/pretrain_pooled_small.py --workdir=runs/pooled_small_sigmoid \
    --config.data.path=pooled.h5ad
  python -m train --config=configs/pretrain_pooled_small.py --workdir=runs/pooled_small_softmax \
    --config.data.path=pooled.h5ad --config.model.attention=softmax
  python -m eval zeroshot --workdir=runs/pooled_small_sigmoid --datasets=pbmc68k_reduced,scmark
"""

from configs import pretrain_pooled, small


def get_config(arg=None):
    c = pretrain_pooled.get_config(arg)
    s = small.get_config(arg)
    c.model = s.model  # Everything the model learns and how, as in the CPU recipe.
    c.data.max_len = 512
    c.data.batch_size = s.data.batch_size
    c.data.bin_ties = s.data.bin_ties
    c.data.eval_batch_size = 64
    c.train.learning_rate = s.train.learning_rate
    c.train.warmup_steps = 50
    c.train.num_steps = 1500
    c.train.log_every = 10
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    return c
