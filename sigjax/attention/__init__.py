"""Sigmoid attention (the op) and the softmax baseline."""

from sigjax.attention._api import default_sigmoid_bias, sigmoid_attention, softmax_attention

__all__ = ["default_sigmoid_bias", "sigmoid_attention", "softmax_attention"]
