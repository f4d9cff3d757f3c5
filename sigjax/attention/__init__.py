"""Sigmoid attention (the op) and the softmax baseline."""

from sigjax.attention._api import (
    SIGMOID_IMPLEMENTATIONS,
    SOFTMAX_IMPLEMENTATIONS,
    check_implementation,
    default_sigmoid_bias,
    sigmoid_attention,
    softmax_attention,
)

__all__ = [
    "SIGMOID_IMPLEMENTATIONS",
    "SOFTMAX_IMPLEMENTATIONS",
    "check_implementation",
    "default_sigmoid_bias",
    "sigmoid_attention",
    "softmax_attention",
]
