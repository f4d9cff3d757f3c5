"""Sigmoid attention kernels: forward; a backward split into a dQ and a dK/dV kernel (Triton), and a
fused backward for Hopper GPUs (hopper.py, Mosaic GPU)."""

from pallas_kernels.sigmoid_attention.backward import backward_dkv, backward_dq
from pallas_kernels.sigmoid_attention.config import KernelConfig, default_config
from pallas_kernels.sigmoid_attention.forward import forward

__all__ = ["KernelConfig", "backward_dkv", "backward_dq", "default_config", "forward"]
