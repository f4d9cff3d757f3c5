"""Base training config: every field, one comment each. Other configs import it and override.

Run:
  python -m train --config=configs/default.py --workdir=runs/default
"""

import ml_collections

from sigjax.data import default_data_config


# Defaults are the recipe measured in docs/results.md (issue 12): the expression decoder trains the
# cell embedding, bins break ties at random, hybrid norm keeps sigmoid's MLPs learning. Runs saved
# before a field existed keep their old behaviour (EncoderConfig defaults, ADDED_FIELDS).
def get_config(arg=None) -> ml_collections.ConfigDict:
    del arg
    c = ml_collections.ConfigDict()
    c.seed = 0  # Seed of parameters, masks and dropout.
    c.distributed = False  # Call jax.distributed.initialize() (one process per host/GPU group).
    c.data = default_data_config()

    c.model = ml_collections.ConfigDict()
    c.model.attention = "sigmoid"  # "sigmoid" or "softmax": the comparison switch.
    # Attention implementation: None (automatic: Pallas sigmoid / cuDNN softmax on GPU, XLA on
    # CPU), "xla", "pallas" (sigmoid only) or "cudnn" (softmax only).
    c.model.implementation = ml_collections.FieldReference(None, field_type=str)
    c.model.num_layers = 4  # Transformer blocks.
    c.model.num_heads = 4  # Attention heads.
    c.model.embed_dim = 128  # Model width E.
    c.model.mlp_dim = 512  # MLP hidden width.
    c.model.dropout = 0.0  # Dropout on block outputs.
    c.model.attention_output_norm = True  # LayerNorm on the attention branch output (hybrid norm).
    c.model.pooling = "mean"  # Cell embedding: "cls" token or "mean" of gene tokens.
    c.model.readout = "decoder"  # Embedding: "pooled", or "decoder" (the decoder's geometry).
    # Block rematerialisation: "none" | "full" | "dots" (speed/memory only). "none" is fastest:
    # "dots" +18%, "full" +24% step time at 161.5M / 8K tokens (docs/training.md, 2026-12-02).
    c.model.remat = "none"
    c.model.dtype = "float32"  # Compute dtype: "float32" or "bfloat16" (parameters stay float32).
    c.model.mask_prob = 0.15  # Fraction of gene values masked for the objective.
    c.model.masked_weight = 0.1  # Weight of the masked-value loss.
    c.model.expression_weight = 1.0  # Weight of the expression-decoder loss (0: old objective).
    c.model.expression_center = True  # Centre the expression loss over the batch, gene by gene.
    c.model.contrastive_weight = 0.0  # InfoNCE between two masked views (0: off; it hurt).
    c.model.contrastive_temperature = 0.1  # Temperature of the InfoNCE similarity logits.
    c.model.value_encoding = c.data.get_ref("value_encoding")  # Follows data.value_encoding.

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 1000  # Optimizer steps.
    c.train.learning_rate = 1e-3  # Peak learning rate.
    c.train.warmup_steps = 100  # Linear warmup steps.
    c.train.final_lr_fraction = 0.1  # Cosine decay ends at this fraction of the peak.
    c.train.b1 = 0.9  # Adam beta1.
    c.train.b2 = 0.98  # Adam beta2.
    c.train.weight_decay = 0.01  # AdamW weight decay.
    c.train.eps = 1e-8  # Adam epsilon (optax's default); gradients far below it shrink the update.
    c.train.grad_clip_norm = 1.0  # Clip by global norm; 0 turns clipping off (stress tests).
    c.train.log_every = 10  # Steps between metrics.jsonl rows.
    c.train.eval_every = 200  # Steps between validation losses (and at the end); 0 = never.
    c.train.checkpoint_every = 200  # Steps between checkpoints (and one at the end).
    c.train.keep_checkpoints = 3  # Latest checkpoints kept.
    c.train.progress_bar = True  # tqdm progress bar on stderr.

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # Data-parallel axis size (-1: all devices not used by fsdp).
    c.mesh.fsdp = 1  # FSDP axis size (parameters and optimizer state sharded over it).
    return c
