"""sigjax: sigmoid attention for single-cell foundation models in JAX and Flax NNX."""

import importlib

from sigjax.attention import default_sigmoid_bias, sigmoid_attention, softmax_attention

# Re-exported on first use, so that `import sigjax` (and `import sigjax.data`) stays light and
# works where the training stack's extras (ml_collections, tensorboardX, anndata) are absent.
_LAZY = {
    "load_anndata": "sigjax.data",
    "load_dataset": "sigjax.data",
    "load_from_config": "sigjax.data",
    "make_datasets": "sigjax.data",
    "CellEncoder": "sigjax.model",
    "EncoderConfig": "sigjax.model",
    "SelfAttention": "sigjax.model",
    "make_attention_fn": "sigjax.model",
    "evaluate_loss": "sigjax.training",
    "load_model": "sigjax.training",
    "train_and_evaluate": "sigjax.training",
    "embed": "sigjax.evaluation",
}

__all__ = ["default_sigmoid_bias", "sigmoid_attention", "softmax_attention", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sigjax' has no attribute {name!r}")
