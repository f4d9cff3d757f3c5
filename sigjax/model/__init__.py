"""The cell encoder and its attention layers (Flax NNX)."""

from sigjax.model._encoder import Block, CellEncoder, ValueMlp
from sigjax.model._layers import Mlp, SelfAttention, attend, make_attention_fn

__all__ = [
    "Block",
    "CellEncoder",
    "Mlp",
    "SelfAttention",
    "ValueMlp",
    "attend",
    "make_attention_fn",
]
