"""Block sizes, warps and stages for the sigmoid attention kernels, keyed by head dim and dtype.

All block sizes are powers of 2 (a Triton requirement). Callers pad T to a multiple of every
query block and S to a multiple of every key block. The table holds the configurations measured
fastest on an H200 (see docs/benchmarks.md and `python -m eval tune`).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tiles and launch parameters of the three kernels.

    Attributes:
      block_q, block_k: forward query/key tile.
      num_warps, num_stages: forward launch.
      block_q_dq, block_k_dq: dQ kernel query/key tile.
      block_q_dkv, block_k_dkv: dK/dV kernel query/key tile.
      num_warps_bwd, num_stages_bwd: backward launches.
      split_loops: run interior tiles in a loop without masking, boundary tiles in masked loops;
        False runs one masked loop.
      fused_bwd: one backward kernel over key blocks that also adds dQ atomically into a float32
        buffer (5 tile products per tile pair), instead of a dK/dV kernel plus a dQ kernel (7).
    """

    block_q: int = 128
    block_k: int = 64
    num_warps: int = 4
    num_stages: int = 3
    block_q_dq: int = 64
    block_k_dq: int = 64
    block_q_dkv: int = 64
    block_k_dkv: int = 64
    num_warps_bwd: int = 4
    num_stages_bwd: int = 2
    split_loops: bool = True
    fused_bwd: bool = False

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.startswith("block_") and (value < 16 or value & (value - 1)):
                raise ValueError(
                    f"BlockSizes.{field.name}: got {value}, expected a power of 2 >= 16"
                )
            if field.name.startswith("num_") and value < 1:
                raise ValueError(f"BlockSizes.{field.name}: got {value}, expected >= 1")

    @property
    def q_multiple(self) -> int:
        """T is padded to a multiple of this."""
        return max(self.block_q, self.block_q_dq, self.block_q_dkv)

    @property
    def k_multiple(self) -> int:
        """S is padded to a multiple of this."""
        return max(self.block_k, self.block_k_dq, self.block_k_dkv)


# (head dim bucket, dtype name) -> BlockSizes. Head dims are padded to a power of 2 first.
_TABLE = {
    (16, "bfloat16"): BlockSizes(block_q=128, block_k=64, num_warps=4),
    (32, "bfloat16"): BlockSizes(block_q=128, block_k=64, num_warps=4),
    (64, "bfloat16"): BlockSizes(block_q=128, block_k=64, num_warps=4, num_stages=3),
    # H=128 forward: 128x32 tiles, 4 warps, 4 stages gave 533 TFLOPS vs 445 for 128x64/8/3
    # (H200, T=8192, docs/benchmarks.md run 5).
    (128, "bfloat16"): BlockSizes(block_q=128, block_k=32, num_warps=4, num_stages=4),
    (256, "bfloat16"): BlockSizes(
        block_q=64,
        block_k=32,
        num_warps=4,
        num_stages=2,
        block_q_dq=32,
        block_k_dq=32,
        block_q_dkv=32,
        block_k_dkv=32,
    ),
}


def default_block_sizes(head_dim: int, dtype_name: str) -> BlockSizes:
    """Tuned block sizes for a (power-of-2) head dim and dtype name; float16 shares bfloat16's."""
    if dtype_name == "float16":
        dtype_name = "bfloat16"
    if dtype_name == "float32":
        # float32 tiles take twice the shared memory and run without tensor-core bf16 rates.
        f32 = BlockSizes(
            block_q=64,
            block_k=32,
            num_warps=4,
            num_stages=2,
            block_q_dq=32,
            block_k_dq=32,
            block_q_dkv=32,
            block_k_dkv=32,
            num_stages_bwd=1,
        )
        return dataclasses.replace(f32, block_q=32, num_stages=1) if head_dim >= 256 else f32
    key = (min(max(head_dim, 16), 256), dtype_name)
    return _TABLE.get(key, BlockSizes())
