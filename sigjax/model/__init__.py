"""The cell encoder and its attention layers (Flax NNX)."""

from sigjax.model._config import EncoderConfig
from sigjax.model._encoder import Block, CellEncoder, ValueMlp
from sigjax.model._layers import ATTENTIONS, Mlp, SelfAttention, attend, make_attention_fn

__all__ = [
    "ATTENTIONS",
    "Block",
    "CellEncoder",
    "EncoderConfig",
    "Mlp",
    "SelfAttention",
    "ValueMlp",
    "attend",
    "make_attention_fn",
]
