"""sigjax: sigmoid attention for single-cell foundation models in JAX and Flax NNX."""

from sigjax.attention import default_sigmoid_bias, sigmoid_attention, softmax_attention

__all__ = ["default_sigmoid_bias", "sigmoid_attention", "softmax_attention"]
