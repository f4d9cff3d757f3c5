"""Sigmoid attention kernels: forward, and a backward split into a dQ and a dK/dV kernel."""

from pallas_kernels.sigmoid_attention.backward import backward_dkv, backward_dq
from pallas_kernels.sigmoid_attention.block_sizes import BlockSizes, default_block_sizes
from pallas_kernels.sigmoid_attention.forward import forward

__all__ = ["BlockSizes", "backward_dkv", "backward_dq", "default_block_sizes", "forward"]
