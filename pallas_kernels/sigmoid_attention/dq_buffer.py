"""The Hopper backward's float32 dq buffer, touched only where queries are valid (Triton kernels).

The fused backward (hopper.py) adds each query tile's dq share into a float32 buffer, so the buffer
is zeroed before the kernel and cast to the inputs' dtype after it. Done by XLA, both passes cover
all B * T rows, padded ones too: 0.115 ms on an H100 at 16,384 tokens and hidden 2048 whatever the
lengths, which is 8% of the op's forward+backward at H=64, T=4096 with 50% padding and half of
what the backward loses against its dense rate there (docs/benchmarks.md run 29, call 5). Here
each program owns `ROWS` tokens of one sequence and `cols` of its N * H values and skips rows past
the sequence's query length: `zeroed` writes zeros only to row blocks that start before it (the
kernel adds only into query tiles holding a valid query; rows past that hold whatever the memory
held), `cast` reads only those row blocks and writes 0 to every padded row.
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

ROWS = 32  # Tokens per program; the Hopper kernels' query tiles (64, 128) are multiples of it.
MAX_COLS = 512  # Values per row and program, at most (2 KiB of float32).
NUM_WARPS = 8


def _cols(width: int) -> int:
    """The largest power of 2 <= MAX_COLS dividing `width` (N * H; H is 64 or 128 here)."""
    cols = MAX_COLS
    while width % cols:
        cols //= 2
    return cols


def _grid_specs(shape, cols: int):
    b, t, width = shape
    grid = (b, t // ROWS, width // cols)
    rows = pl.BlockSpec((None, ROWS, cols), lambda i, r, c: (i, r, c))
    length = pl.BlockSpec((1,), lambda i, r, c: (i,))
    return grid, rows, length


def _check(shape, q_lens):
    b, t, *_ = shape
    if t % ROWS:
        raise ValueError(f"dq buffer: T={t} must be a multiple of {ROWS}")
    if q_lens.shape != (b,):
        raise ValueError(f"dq buffer: q_lens must have shape ({b},), got {q_lens.shape}")


def _zero_kernel(len_ref, o_ref):
    @pl.when(pl.program_id(1) * ROWS < len_ref[0])
    def _():
        o_ref[...] = jnp.zeros(o_ref.shape, o_ref.dtype)


def zeroed(shape, q_lens, *, interpret: bool = False) -> jax.Array:
    """A [B, T, N, H] float32 buffer for `fused_backward`'s dq: 0 in every block of ROWS tokens
    that starts before its sequence's q_len, unspecified elsewhere."""
    _check(shape, q_lens)
    b, t, n, h = shape
    grid, rows, length = _grid_specs((b, t, n * h), _cols(n * h))
    out = pl.pallas_call(
        _zero_kernel,
        grid=grid,
        in_specs=[length],
        out_specs=rows,
        out_shape=jax.ShapeDtypeStruct((b, t, n * h), jnp.float32),
        compiler_params=plgpu.CompilerParams(num_warps=NUM_WARPS, num_stages=1),
        interpret=interpret,
        name="sigmoid_attention_dq_zero",
    )(q_lens.astype(jnp.int32))
    return out.reshape(shape)


def _cast_kernel(len_ref, x_ref, o_ref, *, scale: float):
    first = pl.program_id(1) * ROWS
    q_len = len_ref[0]

    @pl.when(first < q_len)
    def _():
        token = first + jnp.arange(ROWS, dtype=jnp.int32)[:, None]
        x = x_ref[...] * scale
        o_ref[...] = jnp.where(token < q_len, x, 0.0).astype(o_ref.dtype)

    @pl.when(first >= q_len)
    def _():
        o_ref[...] = jnp.zeros(o_ref.shape, o_ref.dtype)


def cast(buffer, q_lens, *, scale: float, dtype, interpret: bool = False) -> jax.Array:
    """buffer * scale in `dtype` for tokens before their sequence's q_len, 0 for the others;
    row blocks of padding only are not read (they may hold anything, NaN included)."""
    _check(buffer.shape, q_lens)
    b, t, n, h = buffer.shape
    cols = _cols(n * h)
    grid, rows, length = _grid_specs((b, t, n * h), cols)
    out = pl.pallas_call(
        functools.partial(_cast_kernel, scale=float(scale)),
        grid=grid,
        in_specs=[length, rows],
        out_specs=rows,
        out_shape=jax.ShapeDtypeStruct((b, t, n * h), dtype),
        compiler_params=plgpu.CompilerParams(num_warps=NUM_WARPS, num_stages=1),
        interpret=interpret,
        name="sigmoid_attention_dq_cast",
    )(q_lens.astype(jnp.int32), buffer.reshape(b, t, n * h))
    return out.reshape(buffer.shape)
