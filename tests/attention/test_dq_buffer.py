"""The Hopper backward's dq buffer passes (pallas_kernels/sigmoid_attention/dq_buffer.py).

`zeroed` must clear every row a valid query's dq share can land in, `cast` must scale and cast
the valid rows and write exactly 0 to every padded row without reading blocks of padding only
(which hold whatever the memory held, NaN included). Interpret mode on CPU; compiled on a GPU
(marked `gpu`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.sigmoid_attention import dq_buffer

# (B, T, N, H), query lengths: a full sequence, one ending inside a row block, one ending on a
# block boundary, an empty one; N * H = 384 and 2048 take column blocks of 128 and 512.
CASES = [
    ((4, 128, 6, 64), [128, 70, 32, 0]),
    ((2, 256, 16, 128), [1, 200]),
]


class DqBufferSuite:
    interpret: bool

    @pytest.mark.parametrize("shape, lens", CASES, ids=str)
    def test_zeroed_clears_every_block_a_valid_query_reaches(self, shape, lens):
        buffer = dq_buffer.zeroed(shape, jnp.asarray(lens, jnp.int32), interpret=self.interpret)
        assert buffer.shape == shape and buffer.dtype == jnp.float32
        buffer = np.asarray(buffer)
        for b, length in enumerate(lens):
            reached = -(-length // dq_buffer.ROWS) * dq_buffer.ROWS
            assert np.all(buffer[b, :reached] == 0), (b, length)

    @pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
    @pytest.mark.parametrize("shape, lens", CASES, ids=str)
    def test_cast_scales_valid_rows_and_zeroes_padding(self, shape, lens, dtype):
        x = jax.random.normal(jax.random.key(0), shape, jnp.float32)
        padded = np.arange(shape[1])[None, :] >= np.asarray(lens)[:, None]
        x = jnp.where(jnp.asarray(padded)[:, :, None, None], jnp.nan, x)  # Padding: NaN.
        got = dq_buffer.cast(
            x, jnp.asarray(lens, jnp.int32), scale=0.3, dtype=dtype, interpret=self.interpret
        )
        assert got.dtype == jnp.dtype(dtype)
        want = jnp.where(jnp.isnan(x), 0.0, x * 0.3).astype(dtype)
        np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))

    def test_round_trip_of_a_reduce_added_buffer(self):
        # What fused_backward does: zero, add shares into the valid tiles, cast.
        shape, lens = CASES[0]
        lens = jnp.asarray(lens, jnp.int32)
        share = jax.random.normal(jax.random.key(1), shape, jnp.float32)
        buffer = dq_buffer.zeroed(shape, lens, interpret=self.interpret)
        valid = (jnp.arange(shape[1])[None, :] < lens[:, None])[:, :, None, None]
        buffer = buffer + jnp.where(valid, share, 0.0) * 2.0
        got = dq_buffer.cast(buffer, lens, scale=0.5, dtype=jnp.float16, interpret=self.interpret)
        want = jnp.where(valid, share, 0.0).astype(jnp.float16)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


class TestDqBufferInterpret(DqBufferSuite):
    interpret = True

    def test_rejects_bad_shapes(self):
        with pytest.raises(ValueError, match="multiple of 32"):
            dq_buffer.zeroed((1, 48, 1, 64), jnp.ones(1, jnp.int32))
        with pytest.raises(ValueError, match=r"q_lens must have shape \(2,\)"):
            dq_buffer.cast(jnp.zeros((2, 64, 1, 64)), jnp.ones(3, jnp.int32), scale=1.0, dtype="f2")


@pytest.mark.gpu
class TestDqBufferCompiled(DqBufferSuite):
    interpret = False
