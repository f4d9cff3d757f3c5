"""Hopper kernels through Pallas Mosaic GPU (wgmma, TMA, warp specialisation): a fused backward
and a forward.

The split Triton backward (backward.py) recomputes the scores in two kernels: 9 tile products per
tile pair for forward plus backward, where 7 would do. Here one kernel per key block does all five
backward products per tile pair,

    s^T = k q^T,  p^T = sigmoid(scale s^T + b),  dp^T = v do^T,
    dv += p^T do,  ds^T = dp^T p^T (1 - p^T),  dk += ds^T q,  dq_i += ds k,

and adds each query tile's dq share into a float32 buffer with one TMA reduce-add per tile (a bulk
reduction done by the copy engine at L2, not element-wise atomics from the threads, which is what
made the fused Triton variant slow). The table's choice at both head dims is one share per program
(`shared_dq`): the two warpgroups put their ds^T side by side in shared memory and each computes
half of the tile's dq from all of the program's keys, at H=128 half of its columns, at H=64 half of
its 128 queries (`dq_rows`, since 2026-12-06, run 22: the backward alone 3.7-6.8% faster than one
share per warpgroup on an H100, fwd+bwd 1.05 -> 1.12x cuDNN).

Layout of one program (a CTA): `COMPUTE_WGS` compute warpgroups, each owning `block_k` keys of one
(batch, head), and one memory warpgroup streaming query and d_out tiles through a ring of
`stages` shared-memory slots. The query-tile loop is as long as the sequence's valid queries, and a
program whose keys are all padding does no work: padded blocks are skipped as in the forward.

Restrictions (the caller falls back to the Triton kernels otherwise): head dim 64 or 128, 16-bit
inputs, a Hopper GPU (or the Mosaic GPU interpreter). Causal masking and a per-key bias gradient
are handled (compiled tests passed on an H200 on 2026-12-05, docs/benchmarks.md run 12). Key
padding enters through the per-key bias (a padded key's bias is very negative, so its weight is
exactly 0). Whatever padded tokens hold (NaN included; a padded query's d_out too) reaches no
valid output or gradient: the padded rows of every tile a product reads (those of the tiles
holding the last valid key or query, and a backward warpgroup's keys) are cleared in shared
memory first (`_zero_padding_rows`; since 2026-12-06), so the caller needs no pass over d_out.
Measured on an H100 (docs/benchmarks.md run 20): dense calls unchanged; with 50% padding the
forward 1-1.5% and the backward 0-1.3% slower, the op's forward+backward ~2% faster without
XLA's pass over d_out.

A forward (`fused_forward`, KernelConfig.hopper_fwd; 1.05-1.18x cuDNN, run 11) has the
same layout with the roles swapped: each compute warpgroup owns 64 queries, the memory warpgroup
streams key tiles; the two compute warpgroups take turns on the tensor cores (ping-pong), and
without a per-key bias the logit bias is one scalar per sequence (padded keys masked by length).
It writes 0 to rows of padded queries (since 2026-12-05, nineteenth session; checked in the
interpreter, and compiled on an H200 in docs/benchmarks.md run 14: the padded forward cases, which
assert those rows are exactly 0, passed).

Tests (tests/attention/test_hopper.py): values and gradients in the Mosaic GPU interpreter; on any
machine, the compiled kernels' lowering to Mosaic GPU MLIR (ops, layouts, shared memory); compiled
and run on Hopper GPUs (marked `gpu`).

Measured (H200, docs/benchmarks.md run 18, before run 19's mask and registers): forward
1.05-1.22x cuDNN softmax's, forward plus backward 1.06-1.08x at H=64 and 1.01-1.05x at H=128
(T=4K-16K). Run 19 (an H100, T=4K/8K, these kernels): forward 1.09-1.18x, forward plus backward
1.05-1.07x; causal forward plus backward 0.54-0.56x its non-causal time.
ptxas (run 16): the H=64 backward uses 168 registers without spills; the H=128 one spills 144 bytes
(120 with the register split 240/24 of run 19; causal: 412 with 2-D iota masks, 244 now).
A variant that issued the next query tile's products across the loop's back edge was 18-22% slower:
ptxas then serialises every wgmma (it reads accumulators of products still in flight).
Run 17 (H100): the H=128 spill stays with dv's product issued after ds^T, without overlap and with
3 stages, and none of them is faster; at H=64 the backward is 8.6% faster with its dq reduce-adds
taken out (wrong results, an ablation), but two dq buffers per warpgroup (no wait for the last
share's read) gained nothing at H=64 and cost 16% at H=128. The forward's programs of padding load
nothing, and its last copy is waited for its reads only (1-3% on padded forwards).
Run 18 (H100): persistent variants of both kernels (one CTA per SM running every 132nd program, the
next program's first tiles streaming in while the last one finishes) passed their compiled checks
but were slower at every shape (backward 3-33%, forward up to 8%); removed (they are in 8458d99).
Run 19 (H100): masks from 1-D iotas (2.5% off the causal H=128 backward) and the backward's
register split 240/24 (1-2% at H=128) adopted.
Run 29 (H100): XLA's zero fill and cast of the float32 dq buffer take 0.115 ms at 16,384 tokens and
hidden 2048 whatever the lengths (8% of the op's fwd+bwd at H=64, T=4096 with 50% padding). Triton
kernels doing both only for row blocks holding a valid query took 0.086-0.093 ms with 50% padding
(0.119-0.160 dense), and the op's fwd+bwd 0.996-1.007x the time with XLA's passes: no gain;
removed (in 0a5436c).
Run 30 (H100): part of each tile's weights without the MUFU (1 / (1 + 2^u) from float32 and
integer operations, 17 per weight, relative error < 9e-5; `fma_cols`) made both kernels slower:
forward 5-8% with 1/8 of the weights so, 9-17% with 1/4; backward 4-11% at H=64. The elementwise
work here is not limited by the MUFU (by the timings; no pipe profile). The backward's lean exit,
order-neutral this time: 0.991-1.017x, no gain. Both removed (in b34cad8).
"""

import functools
import inspect

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.sigmoid_attention import _common
from pallas_kernels.sigmoid_attention.config import HOPPER_KEY_MULTIPLE, HOPPER_QUERY_MULTIPLE

COMPUTE_WGS = 2
BLOCK_Q = HOPPER_QUERY_MULTIPLE
BLOCK_K = HOPPER_KEY_MULTIPLE // COMPUTE_WGS


def _swizzled(swizzle: int, dtype):
    """Shared-memory transforms of tiles swizzled in `swizzle`-byte rows (wgmma needs both
    operands of a product swizzled alike)."""
    return (
        plgpu.TilingTransform((8, swizzle // jnp.dtype(dtype).itemsize)),
        plgpu.SwizzleTransform(swizzle),
    )


# Shared-memory layouts wgmma and TMA read: 128-byte swizzled tiles of 16-bit and float32 values.
_TILED = _swizzled(128, jnp.bfloat16)
_TILED_F32 = _swizzled(128, jnp.float32)
# The forward's key tile (JAX's Mosaic GPU flash attention is fastest at 128 on an H100/H200).
FORWARD_BLOCK_K = 128
# Registers per thread of a compute and of the memory warpgroup (setmaxnreg), forward and backward:
# 2 * 128 * 240 + 128 * 24 = 64,512 of an SM's 65,536. The backward at 240/24 spills 120 bytes at
# H=128 (144 at 232/40) and runs 1.1-2.2% faster there; the forward at 240/24 was 0-3% slower
# (H100, docs/benchmarks.md run 19).
FORWARD_REGISTERS = (232, 40)
BACKWARD_REGISTERS = (240, 24)
# A padded key's halved logit bias: tanh of it is exactly -1 in float32, so its weight is 0.
PADDED_KEY_BIAS = -1e30


def supported(*, head_dim: int, dtype) -> str | None:
    """None when the Hopper kernels handle the call, else the reason they do not."""
    if head_dim not in (64, 128):
        return f"head dim {head_dim} (64 or 128)"
    if jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return f"dtype {jnp.dtype(dtype).name} (bfloat16 or float16)"
    return None


def _transposed(ref, scratch, interpreted: bool):
    """refᵀ as a wgmma operand: read in place when compiled; the interpreter cannot, so there the
    transpose is copied into `scratch` first."""
    if not interpreted:
        return ref.transpose((1, 0))
    scratch[...] = ref[...].T
    return scratch


def _in_registers(x, scratch, interpreted: bool):
    """x as the left wgmma operand: from registers when compiled, from `scratch` if interpreted."""
    if not interpreted:
        return x
    scratch[...] = x
    return scratch


# plgpu.load(ref, idx, ...) until jax 0.11 (idx required in 0.10, optional in 0.11), plgpu.load(ref,
# ...) from 0.12 (the index goes on the ref).
_LOAD_TAKES_INDEX = "idx" in inspect.signature(plgpu.load).parameters


def _load(ref, layout, interpreted: bool):
    """A vector or tile from shared memory in `layout` (the interpreter has no layouts, nor
    plgpu.load)."""
    if interpreted:
        return ref[...]
    if _LOAD_TAKES_INDEX:
        return plgpu.load(ref, (), layout=layout)
    return plgpu.load(ref, layout=layout)


def _zero_padding_rows(refs, start, length, interpreted: bool, chunk: int = 64):
    """Sets the rows of [tokens, H] tiles in shared memory whose tokens (start, start + 1, ...)
    are at or past `length` to 0, `chunk` rows at a time (those holding padding only), and
    fences the stores for wgmma and TMA.

    Padded tokens may hold anything, NaN included, and a masked weight of 0 times NaN is NaN in
    a product: a tile holding padding is cleared before any product reads it. Both compute
    warpgroups may clear a tile they share: they store the same bits, so neither's products can
    see anything else."""
    layout = None if interpreted else plgpu.Layout.WGMMA

    def clear(row, first):
        for ref in refs:
            part = ref.at[pl.ds(row, chunk)]
            x = _load(part, layout, interpreted)
            rows = plgpu.broadcasted_iota(jnp.int32, x.shape, 0, layout=layout) + first
            part[...] = jnp.where(rows < length, x, jnp.zeros((), x.dtype))
        plgpu.commit_smem()

    for row in range(0, refs[0].shape[0], chunk):
        first = start + row
        pl.when(first + chunk > length)(functools.partial(clear, row, first))


def _program(q_lens_ref, kv_lens_ref, axis: str, block: int, loop_block: int, causal: bool):
    """This program's batch, head, warpgroup, first token along `axis` ("q": queries, "kv":
    keys; COMPUTE_WGS tiles of `block`), the first `loop_block` tile of the other axis its loop
    visits and the number of tiles it visits (those holding a valid token and, when causal, a pair
    at or below the diagonal; none when all of its own tokens are padding), and tile(ref, start,
    size): rows [start, start + size) of its (batch, head) in a [B, L, N, H] ref.
    """
    batch = lax.axis_index("batch")
    head = lax.axis_index("heads")
    wg = lax.axis_index("wg")
    start = lax.axis_index(axis) * (COMPUTE_WGS * block)
    q_len = q_lens_ref[batch]
    kv_len = kv_lens_ref[batch]
    own_len, loop_len = (q_len, kv_len) if axis == "q" else (kv_len, q_len)
    any_own = start < own_len
    count = _cdiv(loop_len, loop_block)
    first = 0  # A Python 0 without causal masking: no index arithmetic is traced for it.
    if causal and axis == "q":  # No key after the program's last query.
        count = jnp.minimum(count, _cdiv(start + COMPUTE_WGS * block, loop_block))
    elif causal:  # No query before the program's first key.
        first = lax.div(start, jnp.int32(loop_block))
        count = jnp.maximum(count - first, 0)
    steps = jnp.where(any_own, count, 0)

    def tile(ref, first, size):
        return ref.at[batch, pl.ds(first, size), head]

    return batch, head, wg, start, first, steps, tile


def _cdiv(x, d: int):
    return lax.div(x + d - 1, jnp.int32(d))


def _offset(first, n):
    return n if isinstance(first, int) and first == 0 else first + n


def _sigmoid(scores, scale: float, half_bias):
    """sigmoid(scale * scores + 2 * half_bias) as 0.5 + 0.5 tanh(.../2): one tanh per element."""
    return 0.5 * _tanh_half(scores, scale, half_bias) + 0.5


def _tanh_half(scores, scale: float, half_bias):
    """tanh((scale * scores + 2 * half_bias) / 2) = 2 sigmoid(...) - 1."""
    return jnp.tanh(scores * (0.5 * scale) + half_bias)


def _mask(
    p,
    row_start,
    col_start,
    rows_are_keys: bool,
    interpreted: bool,
    causal=True,
    kv_len=None,
    fill: float = 0.0,
):
    """p with `fill` (what stands for a weight of 0) for the pairs whose key comes after the
    query (causal) or is padding (at or past kv_len, if given). Rows and columns: a tile's keys
    and queries, or queries and keys, from row_start and col_start.

    The indices come from 1-D iotas broadcast to the tile (a thread holds 2 distinct rows and
    16 columns of a 64x64 tile): the causal backward at H=128 then spills 324 bytes instead of
    412 with 2-D iotas and runs 2.5% faster (docs/benchmarks.md run 19)."""

    def indices(dim: int, start):
        layout = None if interpreted else plgpu.Layout.WGMMA.reduce(1 - dim)
        x = plgpu.broadcasted_iota(jnp.int32, (p.shape[dim],), 0, layout=layout) + start
        return lax.broadcast_in_dim(x, p.shape, [dim])

    # Built only where used: Mosaic GPU cannot lay out an unused iota.
    starts = (row_start, col_start)
    key_dim = 0 if rows_are_keys else 1
    keys = indices(key_dim, starts[key_dim])
    keep = None
    if causal:
        keep = keys <= indices(1 - key_dim, starts[1 - key_dim])
    if kv_len is not None:
        keep = keys < kv_len if keep is None else keep & (keys < kv_len)
    return jnp.where(keep, p, fill)


def _loops(split, steps, body, carry, masked_first: bool):
    """body(n, carry, masked) for n in [0, steps): masked on one side of `split` ([0, split) if
    masked_first, else [split, steps)); never with split None. Returns the final carry (None:
    no carry).

    The Triton kernels' `_common.run_loops` does the same with lax.fori_loop; pl.loop here keeps
    the loop of the measured backward (docs/probes/same_kernel.py) and allows no carry."""
    ranges = [(0, steps, False)]
    if split is not None:
        ranges = [(0, split, masked_first), (split, steps, not masked_first)]
    for lo, hi, masked in ranges:
        fn = functools.partial(body, masked=masked)
        if carry is None:
            pl.loop(lo, hi)(lambda n, fn=fn: fn(n, None))
        else:
            carry = pl.loop(lo, hi, init_carry=carry)(fn)
    return carry


def _kernel(
    q_ref,
    k_ref,
    v_ref,
    bias_ref,
    do_ref,
    q_lens_ref,
    kv_lens_ref,
    dq_ref,
    *out_refs,
    scale: float,
    block_q: int,
    block_k: int,
    stages: int,
    overlap: bool,
    shared_dq: bool,
    dq_rows: bool,
    tanh_ds: bool,
    causal: bool,
    interpreted: bool,
):
    *out_refs, scoped = out_refs
    dk_ref, dv_ref, *dbias_ref = out_refs  # dbias_ref: [] without a bias gradient.
    smem, loaded, consumed = scoped
    q_smem, do_smem, k_smem, v_smem, bias_smem, ds_smem, dq_smem, t_smem = smem
    # ds_ready, done: [] unless shared_dq.
    q_loaded, do_loaded, k_loaded, v_loaded, bias_loaded, *sync = loaded
    # Query tiles holding a valid query; none when every key of this program is padding.
    batch, head, wg, cta_keys, first, steps, tile = _program(
        q_lens_ref, kv_lens_ref, "kv", block_k, block_q, causal
    )
    dtype = q_ref.dtype
    h = q_ref.shape[-1]

    @pl.when(wg < COMPUTE_WGS)
    def _compute():
        plgpu.set_max_registers(BACKWARD_REGISTERS[0], action="increase")
        k_start = cta_keys + wg * block_k
        vs, bs, dq_s = v_smem.at[wg], bias_smem.at[wg], dq_smem.at[wg]
        if shared_dq:  # k and ds^T of both warpgroups, [2 block_k, ...]; dq: half of H each,
            ks = k_smem.at[pl.ds(wg * block_k, block_k)]  # or (dq_rows) half of the queries.
            ds_s = None
            h_dq = h if dq_rows else h // COMPUTE_WGS
            q_dq = block_q // COMPUTE_WGS if dq_rows else block_q
            dq_cols = pl.ds(0 if dq_rows else wg * h_dq, h_dq)
            dq_first_row = wg * q_dq if dq_rows else 0
        else:
            ks, ds_s = k_smem.at[wg], ds_smem.at[wg]

        def scratch(which):  # Interpreter-only buffers (None when compiled).
            if t_smem is None:
                return None
            return ds_s if which is None else t_smem[which].at[wg]

        def transposed(ref, which):
            return _transposed(ref, scratch(which), interpreted)

        def in_registers(x, which):
            return _in_registers(x, scratch(which), interpreted)

        plgpu.copy_gmem_to_smem(tile(k_ref, k_start, block_k), ks, k_loaded.at[wg])
        plgpu.copy_gmem_to_smem(tile(v_ref, k_start, block_k), vs, v_loaded.at[wg])
        plgpu.copy_gmem_to_smem(bias_ref.at[batch, pl.ds(k_start, block_k)], bs, bias_loaded.at[wg])
        plgpu.barrier_wait(k_loaded.at[wg])
        plgpu.barrier_wait(v_loaded.at[wg])
        plgpu.barrier_wait(bias_loaded.at[wg])
        q_len, kv_len = q_lens_ref[batch], kv_lens_ref[batch]

        # Keys past the last valid one: whatever they hold reaches no product.
        _zero_padding_rows((ks, vs), k_start, kv_len, interpreted)

        # Tiles are transposed, [keys, queries], so that dk and dv accumulate as [block_k, H].
        row_layout = plgpu.Layout.WGMMA.reduce(1)
        bias = _load(bs, row_layout, interpreted)
        half_bias = lax.broadcast_in_dim(bias, (block_k, block_q), [0])

        def step(n, dbias, dk_acc, dv_acc, masked: bool):
            slot = lax.rem(n, jnp.int32(stages))
            q_rows = lambda: _offset(first, n) * block_q  # noqa: E731 (traced where used)
            qs, dos = q_smem.at[slot], do_smem.at[slot]
            plgpu.barrier_wait(q_loaded.at[slot])
            plgpu.barrier_wait(do_loaded.at[slot])
            # The tile holding the last valid query: its padded rows would reach dk's and dv's
            # products (and, through ds, dq's).
            _zero_padding_rows((qs, dos), q_rows(), q_len, interpreted)

            def weights(s_t):  # p, or with tanh_ds w = 2 p - 1 (-1 where masked).
                w_t = (_tanh_half if tanh_ds else _sigmoid)(s_t, scale, half_bias)
                if masked:  # A tile on the causal diagonal.
                    fill = _common.ZERO_WEIGHT[tanh_ds]
                    w_t = _mask(w_t, k_start, q_rows(), True, interpreted, fill=fill)
                return w_t

            if overlap:
                # Both score-sized products at once; the sigmoid runs while dp^T is computed,
                # and dv's product while ds^T is.
                def front(s_acc, dp_acc):
                    plgpu.wgmma(s_acc, ks, transposed(qs, 0))
                    plgpu.wgmma(dp_acc, vs, transposed(dos, 1))
                    s_t = plgpu.wgmma_accumulator_load(s_acc, wait_n=1)
                    return weights(s_t), dp_acc[...]

                acc_kq = plgpu.ACC((block_k, block_q), jnp.float32)
                w_t, dp_t = pl.run_scoped(front, acc_kq, acc_kq)
                p_t = _common.weight_p(w_t, tanh_ds)
                plgpu.wgmma(dv_acc, in_registers(p_t.astype(dtype), 3), dos)
            else:

                def scores(acc):
                    plgpu.wgmma(acc, ks, transposed(qs, 0))
                    return acc[...]

                w_t = weights(pl.run_scoped(scores, plgpu.ACC((block_k, block_q), jnp.float32)))
                p_t = _common.weight_p(w_t, tanh_ds)

                def dv_and_dp(dp_acc):
                    plgpu.wgmma(dv_acc, in_registers(p_t.astype(dtype), 3), dos)
                    plgpu.wgmma(dp_acc, vs, transposed(dos, 1))
                    return dp_acc[...]  # Waits for both products.

                dp_t = pl.run_scoped(dv_and_dp, plgpu.ACC((block_k, block_q), jnp.float32))
            # d(loss)/d(logit), [keys, queries]; with tanh_ds 4 times it, as dp (1 - w^2).
            ds_t = _common.weight_grad(dp_t, w_t, tanh_ds)
            if dbias is not None:
                dbias = dbias + jnp.sum(ds_t, axis=1)
            ds_t = ds_t.astype(dtype)
            if shared_dq:
                dq = shared_dq_step(n, ds_t, dk_acc, qs)
            else:
                ds_s[...] = ds_t
                plgpu.commit_smem()

                def dk_and_dq(acc):
                    plgpu.wgmma(dk_acc, in_registers(ds_t, None), qs)
                    plgpu.wgmma(acc, transposed(ds_s, 2), ks)
                    return acc[...]  # Waits for every product of this step.

                dq = pl.run_scoped(dk_and_dq, plgpu.ACC((block_q, h), jnp.float32))
            plgpu.barrier_arrive(consumed.at[slot])  # This query tile's q and d_out are used.
            rows = (q_rows() + dq_first_row, q_dq) if shared_dq else (q_rows(), block_q)
            if interpreted:  # No TMA reductions there: each warpgroup adds into its own copy.
                dst = dq_ref.at[wg, batch, pl.ds(*rows), head]
                dst = dst.at[:, dq_cols] if shared_dq else dst
                dst[...] = dst[...] + dq
                return dbias
            plgpu.wait_smem_to_gmem(0, wait_read_only=True)  # The last share has left dq_s.
            dq_s[...] = dq
            plgpu.commit_smem()
            dst = tile(dq_ref, *rows)
            dst = dst.at[:, dq_cols] if shared_dq else dst
            plgpu.copy_smem_to_gmem(dq_s, dst, reduction_op="add")
            return dbias

        def shared_dq_step(n, ds_t, dk_acc, qs):
            """dk's product, and this warpgroup's half of the query tile's dq (half of its
            columns, or with dq_rows half of its queries) from the ds of both warpgroups (both in
            shared memory, two slots by the step's parity): one dq share of [block_q, H] per
            program and step, half the reduce-adds of one per warpgroup."""
            ds_ready, _ = sync
            parity = lax.rem(n, jnp.int32(2))
            ds_all = ds_smem.at[parity]
            ds_own = ds_all.at[pl.ds(wg * block_k, block_k)]
            # Free: both warpgroups passed ds_ready of the step before, so both finished the
            # products of the step before that, the last to read this slot.
            ds_own[...] = ds_t
            plgpu.commit_smem()
            plgpu.barrier_arrive(ds_ready.at[parity])

            def dk_and_dq(acc):
                plgpu.wgmma(dk_acc, _in_registers(ds_t, ds_own, interpreted), qs)
                plgpu.barrier_wait(ds_ready.at[parity])  # The other half is stored.
                if dq_rows:  # Its 64 queries' rows of ds, all keys; all of k's columns.
                    ds_q = transposed(ds_all.at[:, pl.ds(dq_first_row, q_dq)], 2)
                    plgpu.wgmma(acc, ds_q, k_smem)
                else:  # All of ds; its half of k's columns.
                    plgpu.wgmma(acc, transposed(ds_all, 2), k_smem.at[:, dq_cols])
                return acc[...]  # Waits for every product of this step.

            return pl.run_scoped(dk_and_dq, plgpu.ACC((q_dq, h_dq), jnp.float32))

        def accumulate(dk_acc, dv_acc):
            dbias = None
            if dbias_ref:
                dbias = jnp.zeros((block_k,), jnp.float32)
                dbias = dbias if interpreted else plgpu.layout_cast(dbias, row_layout)
            # Query tiles reaching past this warpgroup's first key need the causal mask.
            split = None
            if causal:
                split = jnp.clip(_cdiv(k_start + block_k, block_q) - first, 0, steps)
            body = functools.partial(step, dk_acc=dk_acc, dv_acc=dv_acc)
            dbias = _loops(split, steps, body, dbias, masked_first=True)
            return dk_acc[...], dv_acc[...], dbias

        acc_kh = plgpu.ACC((block_k, h), jnp.float32)
        dk, dv, dbias = pl.run_scoped(accumulate, acc_kh, acc_kh)
        if shared_dq:  # The other warpgroup's last dq product may still read this k.
            _, done = sync
            plgpu.barrier_arrive(done)
            plgpu.barrier_wait(done)
        plgpu.wait_smem_to_gmem(0)
        ks[...] = (dk * (scale * _common.DS_SCALE[tanh_ds])).astype(dtype)
        vs[...] = dv.astype(dtype)
        if dbias_ref:
            bs[...] = dbias * _common.DS_SCALE[tanh_ds]
        plgpu.commit_smem()
        plgpu.copy_smem_to_gmem(ks, tile(dk_ref, k_start, block_k), commit_group=False)
        plgpu.copy_smem_to_gmem(vs, tile(dv_ref, k_start, block_k), commit_group=False)
        if dbias_ref:
            dst = dbias_ref[0].at[batch, head, pl.ds(k_start, block_k)]
            plgpu.copy_smem_to_gmem(bs, dst, commit_group=False)
        plgpu.commit_smem_to_gmem_group()
        plgpu.wait_smem_to_gmem(0)

    @pl.when(wg == COMPUTE_WGS)
    def _memory():
        plgpu.set_max_registers(BACKWARD_REGISTERS[1], action="decrease")

        def load(i, slot):
            for ref, dst, loaded_ in ((q_ref, q_smem, q_loaded), (do_ref, do_smem, do_loaded)):
                rows = _offset(first, i) * block_q
                plgpu.copy_gmem_to_smem(tile(ref, rows, block_q), dst.at[slot], loaded_.at[slot])

        _stream([(load, consumed)], steps, stages, q_ref.shape[1] // block_q)


def _launch(
    kernel, smem, loaded, *, stages, grid, grid_names, out_type, interpret, name, rings=1, **kw
):
    """`kernel` over `grid` with COMPUTE_WGS compute warpgroups and one memory warpgroup.

    kernel(*refs, scoped, **kw, stages=, interpreted=) gets the input and output refs and
    scoped = (smem, loaded, consumed): the shared-memory buffers, the barriers of their loads,
    and a ring of `stages` barriers on which every compute warpgroup releases a streamed slot
    (rings > 1: a tuple of that many rings, one per streamed buffer released on its own, then
    a barrier the compute warpgroups take turns on, see _take_turns).
    """
    consumed = plgpu.Barrier(num_arrivals=COMPUTE_WGS, num_barriers=stages)
    if rings > 1:
        consumed = (consumed,) * rings + (plgpu.Barrier(num_arrivals=COMPUTE_WGS),)
    body = functools.partial(kernel, stages=stages, interpreted=bool(interpret), **kw)

    def entry(*refs):
        pl.run_scoped(
            lambda *scoped: body(*refs, scoped), smem, loaded, consumed, collective_axes="wg"
        )

    mesh = plgpu.Mesh(
        grid=grid, grid_names=grid_names, num_threads=COMPUTE_WGS + 1, thread_name="wg"
    )
    return pl.kernel(
        entry,
        out_type=out_type,
        mesh=mesh,
        compiler_params=plgpu.CompilerParams(approx_math=True),
        interpret=interpret,
        name=name,
    )


def _interpreter_buffers(interpret, dtype, *shapes):
    """Per-warpgroup buffers that only the interpreter needs (None when compiled)."""
    if not interpret:
        return None
    return tuple(plgpu.SMEM((COMPUTE_WGS, *shape), dtype) for shape in shapes)


def _take_turns(turn):
    """Both compute warpgroups arrive at `turn` and wait for each other. Placed after a warpgroup
    issues its scores' product and around its elementwise work, it makes the two take turns on
    the tensor cores: one computes its weights while the other's products run (the ping-pong
    schedule of FlashAttention-3 and of JAX's Mosaic GPU softmax attention)."""
    plgpu.barrier_arrive(turn)
    plgpu.barrier_wait(turn)


def _forward_kernel(
    q_ref,
    k_ref,
    v_ref,
    bias_ref,
    q_lens_ref,
    kv_lens_ref,
    out_ref,
    scoped,
    *,
    scale: float,
    block_q: int,
    block_k: int,
    stages: int,
    causal: bool,
    per_key_bias: bool,
    pingpong: bool,
    interpreted: bool,
):
    smem, loaded, (k_consumed, v_consumed, turn) = scoped
    q_smem, k_smem, v_smem, bias_smem, t_smem = smem
    q_loaded, k_loaded, v_loaded, bias_loaded = loaded
    # Key tiles holding a valid key; none when every query of this program is padding.
    batch, head, wg, cta_queries, _, steps, tile = _program(
        q_lens_ref, kv_lens_ref, "q", block_q, block_k, causal
    )
    dtype = q_ref.dtype
    h = q_ref.shape[-1]

    @pl.when(wg < COMPUTE_WGS)
    def _compute():
        plgpu.set_max_registers(FORWARD_REGISTERS[0], action="increase")
        q_start = cta_queries + wg * block_q
        qs = q_smem.at[wg]

        @pl.when(steps > 0)  # A program without a valid query (or key) only writes zeros.
        def _():
            plgpu.copy_gmem_to_smem(tile(q_ref, q_start, block_q), qs, q_loaded.at[wg])
            plgpu.barrier_wait(q_loaded.at[wg])

        # Without a per-key bias, one scalar per sequence. Padded keys are masked by length
        # (with a per-key bias too: a NaN in a padded key's scores must not pass its bias).
        kv_len = kv_lens_ref[batch]
        half_bias = None if per_key_bias else bias_ref[batch]

        def scratch(which):  # Interpreter-only buffers (None when compiled).
            return None if t_smem is None else t_smem[which].at[wg]

        def step(j, _, acc, masked: bool):
            slot = lax.rem(j, jnp.int32(stages))
            # This tile's k was waited for before the loop or during the previous tile's p v.

            def scores(s_acc):
                plgpu.wgmma(s_acc, qs, _transposed(k_smem.at[slot], scratch(0), interpreted))
                if pingpong:  # The other warpgroup's turn (its p v) while these scores run.
                    _take_turns(turn)
                if masked:  # p will be 0 on padded keys, but 0 times a NaN there is NaN.
                    plgpu.barrier_wait(v_loaded.at[slot])
                    _zero_padding_rows((v_smem.at[slot],), j * block_k, kv_len, interpreted)
                return s_acc[...]

            s_tile = pl.run_scoped(scores, plgpu.ACC((block_q, block_k), jnp.float32))
            hb = half_bias
            if per_key_bias:
                plgpu.barrier_wait(bias_loaded.at[slot])
                bias = _load(bias_smem.at[slot], plgpu.Layout.WGMMA.reduce(0), interpreted)
                hb = lax.broadcast_in_dim(bias, (block_q, block_k), [1])
            plgpu.barrier_arrive(k_consumed.at[slot])  # This tile's k (and bias) are used.
            p = _sigmoid(s_tile, scale, hb)
            if masked:  # A tile on the causal diagonal, or holding the last valid key.
                p = _mask(p, q_start, j * block_k, False, interpreted, causal, kv_len)
            p = p.astype(dtype)
            if pingpong:
                plgpu.barrier_arrive(turn)
            if not masked:  # (A masked tile's v was waited for with its scores.)
                plgpu.barrier_wait(v_loaded.at[slot])
            if pingpong:  # Wait for the other warpgroup's scores to be issued.
                plgpu.barrier_wait(turn)
            plgpu.wgmma(acc, _in_registers(p, scratch(1), interpreted), v_smem.at[slot])

            @pl.when(j + 1 < steps)
            def _():  # While p v runs.
                plgpu.barrier_wait(k_loaded.at[lax.rem(j + 1, jnp.int32(stages))])

            plgpu.wgmma_wait(0)
            plgpu.barrier_arrive(v_consumed.at[slot])  # This tile's v is used.

        def accumulate(acc):
            # Tiles past the first that needs a mask (its keys reach past this warpgroup's first
            # query, or past the last valid key) run masked.
            split = None
            if causal:
                split = lax.div(q_start + 1, jnp.int32(block_k))
            full = lax.div(kv_len, jnp.int32(block_k))
            split = jnp.clip(full if split is None else jnp.minimum(split, full), 0, steps)
            pl.when(steps > 0)(lambda: plgpu.barrier_wait(k_loaded.at[0]))
            if pingpong:
                pl.when(wg == 1)(lambda: _take_turns(turn))  # Warpgroup 0 goes first.
            _loops(split, steps, functools.partial(step, acc=acc), None, masked_first=False)
            if pingpong:
                pl.when(wg == 0)(lambda: _take_turns(turn))  # As many turns for both.
            return acc[...]

        out = pl.run_scoped(accumulate, plgpu.ACC((block_q, h), jnp.float32))
        # Rows of padded queries are 0 (this saves the caller a pass over the output).
        layout = None if interpreted else plgpu.Layout.WGMMA
        rows = plgpu.broadcasted_iota(jnp.int32, out.shape, 0, layout=layout) + q_start
        out = jnp.where(rows < q_lens_ref[batch], out, 0.0)
        qs[...] = out.astype(dtype)
        plgpu.commit_smem()
        plgpu.copy_smem_to_gmem(qs, tile(out_ref, q_start, block_q))
        plgpu.wait_smem_to_gmem(0, wait_read_only=True)  # Writes complete with the kernel.

    @pl.when(wg == COMPUTE_WGS)
    def _memory():
        plgpu.set_max_registers(FORWARD_REGISTERS[1], action="decrease")

        def load_k(j, slot):
            keys = pl.ds(j * block_k, block_k)
            plgpu.copy_gmem_to_smem(
                tile(k_ref, j * block_k, block_k), k_smem.at[slot], k_loaded.at[slot]
            )
            if per_key_bias:
                plgpu.copy_gmem_to_smem(
                    bias_ref.at[batch, keys], bias_smem.at[slot], bias_loaded.at[slot]
                )

        def load_v(j, slot):
            plgpu.copy_gmem_to_smem(
                tile(v_ref, j * block_k, block_k), v_smem.at[slot], v_loaded.at[slot]
            )

        tiles = k_ref.shape[1] // block_k
        _stream([(load_k, k_consumed), (load_v, v_consumed)], steps, stages, tiles)


def _stream(loads, steps, stages: int, tiles: int):
    """The memory warpgroup's loop over tiles 0..steps-1 through `stages` slots: for each
    (load, consumed) of `loads`, load(i, slot) once the compute warpgroups have released the
    slot on `consumed` (a ring of barriers); `tiles` is the static number of tiles along the
    streamed axis."""
    for i in range(min(stages, tiles)):  # Static slices must fit.
        for load, _ in loads:
            pl.when(i < steps)(functools.partial(load, i, i))

    @pl.loop(0, steps - stages)
    def _(i):
        slot = lax.rem(i, jnp.int32(stages))
        for load, consumed in loads:
            plgpu.barrier_wait(consumed.at[slot])
            load(i + stages, slot)

    # Observe the last tiles' releases too, so that every barrier phase is consumed.
    @pl.loop(jnp.maximum(steps - stages, 0), steps)
    def _(i):
        for _, consumed in loads:
            plgpu.barrier_wait(consumed.at[lax.rem(i, jnp.int32(stages))])


@functools.partial(
    jax.jit,
    static_argnames=("scale", "causal", "block_q", "block_k", "stages", "pingpong", "interpret"),
)
def fused_forward(
    q,
    k,
    v,
    half_bias,
    q_lens,
    kv_lens,
    *,
    scale: float,
    causal: bool = False,
    block_q: int = BLOCK_Q,
    block_k: int = FORWARD_BLOCK_K,
    stages: int = 2,
    pingpong: bool = True,
    interpret=False,
):
    """The sigmoid attention output for block-aligned inputs (Mosaic GPU).

    q: [B, T, N, H]; k, v: [B, S, N, H] (16-bit); q_lens, kv_lens: [B] int32. half_bias: the
    halved logit bias, [B] float32 (one per sequence; keys at or past kv_lens are masked) or
    [B, S] (per key, PADDED_KEY_BIAS on padded keys, streamed with k). T must be a multiple of
    COMPUTE_WGS * block_q and S of block_k. Rows of padded queries (at or past q_lens) are 0.
    causal: key j attends to query i only if j <= i (key tiles past a program's last query
    are skipped, those on the diagonal masked).

    Per key tile and warpgroup: s = q k^T (wgmma), p = sigmoid(scale s + b) in registers, out +=
    p v (wgmma, p from registers); k and v of a tile are released to the memory warpgroup
    separately, as soon as each is used. pingpong: the two compute warpgroups take turns on the
    tensor cores (_take_turns), so that one's sigmoid runs during the other's products.

    Measured on an H200 (docs/benchmarks.md run 11): 669 TFLOPS at H=128, T=8192 (cuDNN's
    softmax 601); ping-pong is worth 10-12%.
    """
    b, t, n, h = q.shape
    s = k.shape[1]
    if t % (COMPUTE_WGS * block_q) or s % block_k:
        raise ValueError(
            f"T={t} must be a multiple of {COMPUTE_WGS} * block_q={block_q} and S={s} of "
            f"block_k={block_k}"
        )
    if half_bias.shape not in ((b,), (b, s)):
        raise ValueError(f"half_bias has shape {half_bias.shape}, expected ({b},) or ({b}, {s})")
    per_key_bias = half_bias.ndim == 2
    dtype = q.dtype
    smem = (
        plgpu.SMEM((COMPUTE_WGS, block_q, h), dtype, transforms=_TILED),  # q, then out
        plgpu.SMEM((stages, block_k, h), dtype, transforms=_TILED),  # k
        plgpu.SMEM((stages, block_k, h), dtype, transforms=_TILED),  # v
        plgpu.SMEM((stages, block_k), jnp.float32) if per_key_bias else None,  # bias
        # Interpreter only: transposed k, and p.
        _interpreter_buffers(interpret, dtype, (h, block_k), (block_q, block_k)),
    )
    loaded = (
        plgpu.Barrier(num_barriers=COMPUTE_WGS),
        plgpu.Barrier(num_barriers=stages),
        plgpu.Barrier(num_barriers=stages),
        plgpu.Barrier(num_barriers=stages) if per_key_bias else None,
    )
    return _launch(
        _forward_kernel,
        smem,
        loaded,
        stages=stages,
        rings=2,
        scale=scale,
        block_q=block_q,
        block_k=block_k,
        causal=causal,
        per_key_bias=per_key_bias,
        pingpong=pingpong,
        grid=(n, t // (COMPUTE_WGS * block_q), b),
        grid_names=("heads", "q", "batch"),
        out_type=jax.ShapeDtypeStruct(q.shape, dtype),
        interpret=interpret,
        name="sigmoid_attention_fwd_hopper",
    )(q, k, v, half_bias.astype(jnp.float32), q_lens, kv_lens)


@functools.partial(
    jax.jit,
    static_argnames=(
        "scale",
        "causal",
        "with_dbias",
        "block_q",
        "block_k",
        "stages",
        "overlap",
        "shared_dq",
        "dq_rows",
        "tanh_ds",
        "swizzle",
        "interpret",
    ),
)  # Also eager callers: the dq accumulator is a GMEM ref, which needs a trace.
def fused_backward(
    q,
    k,
    v,
    key_half_bias,
    do,
    q_lens,
    kv_lens,
    *,
    scale: float,
    causal: bool = False,
    with_dbias: bool = False,
    block_q: int | None = None,
    block_k: int = BLOCK_K,
    stages: int = 2,
    overlap: bool = True,
    shared_dq: bool = False,
    dq_rows: bool = False,
    tanh_ds: bool = True,
    swizzle: int | None = None,
    interpret=False,
):
    """dq, dk, dv (and with_dbias: dbias) of sigmoid attention for block-aligned inputs.

    q, do: [B, T, N, H]; k, v: [B, S, N, H] (16-bit); key_half_bias: [B, S] float32, the halved
    logit bias of every key with PADDED_KEY_BIAS on padded keys; q_lens, kv_lens: [B] int32.
    T must be a multiple of block_q and S of COMPUTE_WGS * block_k. Whatever padded rows of q, k,
    v and do hold, rows of dq, dk and dv for padded tokens are 0.

    causal: key j attends to query i only if j <= i; query tiles before a program's first key
    are skipped, tiles on the diagonal masked. with_dbias: also dbias [B, N, S] float32, the
    gradient of every key's logit bias summed over the queries of each head (as the Triton
    backward's).

    Knobs, measured on an H200 at T=8192 (docs/benchmarks.md run 10): `overlap` (the two
    score-sized products issued together, the sigmoid during dp's product, dv's during ds) took
    the backward from 435 to 452 TFLOPS at H=128 and from 428 to 452 at H=64; block_q=128 was
    slower at H=64 (437 with overlap) and does not fit shared memory at H=128; `stages` is the
    depth of the q/d_out ring (3 fits at H=64 only).

    shared_dq (the table's choice at H=128 since run 11: 524 vs 453 TFLOPS at T=8192): the two
    compute warpgroups put their ds^T tiles side by side in shared memory and each computes half
    of the query tile's dq columns from all of the program's keys, so a program adds one
    [block_q, H] float32 share per query tile into dq instead of two (as FlashAttention-3's
    backward), at the cost of the warpgroups waiting for each other once per tile. 3 stages fit
    with it at H=128. At H=64 a half is 32 columns, one 64-byte swizzle tile: there the 16-bit
    tiles are swizzled in 64-byte rows (`swizzle`, default 64 with shared_dq at H=64, else 128),
    which alone cost 3% (run 13); shared_dq so was 2% slower than the table at H=64.

    dq_rows (with shared_dq; block_q then defaults to 128, the only size it takes; the table's
    choice at H=64 since run 22): the
    warpgroups split the query tile's dq by rows instead, 64 queries and all H columns each, so
    every tile keeps its 128-byte swizzle, and a program makes half as many steps of twice the
    work (one H100, T=4K/8K/16K dense and 8K with 50% padding, the backward alone: 0.93-0.96x the
    time of the per-warpgroup shares; ptxas spills 56 bytes where the table's variant spills none).
    The dq product a step late, so that the warpgroups need not wait for each other at every
    step, was 4-6% slower at T <= 8192 (more spills; run 22, removed, in ff675d7).

    tanh_ds (default since run 23): the weights' gradient from w = tanh(logit / 2) = 2 p - 1, which
    the sigmoid computes anyway, as dp (1 - w^2) = 4 ds, two operations per element where
    dp p (1 - p) takes three, the factor 1/4 folded into the scaling of dk, dq and dbias; masked
    pairs get w = -1 (p = 0). At H=64 with dq_rows the backward alone took 0.90-0.96x the time of
    dq_rows with dp p (1 - p) (one H100, T=4K/8K/16K dense and 8K with 50% padding, faster in 12 of
    12 rounds; ptxas spills 40 bytes instead of 56), and the 161.5M step at 8K tokens fell from
    0.921 to 0.883 of softmax's; at H=128 no change beyond noise (fwd+bwd 549/550 vs 548/541
    TFLOPS, T=8K/16K). w^2 is rounded in float32, an error of 2^-24 / (4 p) relative to 1 - w^2:
    2.4e-4 at p = 1/16384, below 16-bit resolution (docs/benchmarks.md run 23). The 16-bit ds^T tile
    then holds 4 ds, at most |dp|: in float16 it overflows where |dp| > 65504 (ds from p: 4x that).

    interpret: False, or Mosaic GPU interpreter parameters (CPU tests). The interpreter lacks a
    few things the compiled kernel uses (wgmma operands from registers or transposed in place,
    TMA reductions, layouts), so there transposes and register operands go through extra
    buffers and each warpgroup adds its dq shares into its own float32 copy.
    """
    b, t, n, h = q.shape
    s = k.shape[1]
    if block_q is None:  # dq_rows: each warpgroup's dq product covers 64 queries of the tile.
        block_q = COMPUTE_WGS * BLOCK_Q if dq_rows else BLOCK_Q
    if t % block_q or s % (COMPUTE_WGS * block_k):
        raise ValueError(
            f"T={t} must be a multiple of block_q={block_q} and S={s} of "
            f"{COMPUTE_WGS} * block_k={block_k}"
        )
    if dq_rows and (not shared_dq or block_q != COMPUTE_WGS * BLOCK_Q):
        raise ValueError(
            f"dq_rows needs shared_dq and block_q={COMPUTE_WGS * BLOCK_Q} (a warpgroup's dq "
            f"product covers {BLOCK_Q} queries); got shared_dq={shared_dq}, block_q={block_q}"
        )
    if swizzle is None:  # Halves of 64 columns are one 64-byte swizzle tile each.
        swizzle = 64 if shared_dq and not dq_rows and h == 64 else 128
    if shared_dq and not dq_rows and (h // COMPUTE_WGS) * q.dtype.itemsize % swizzle:
        raise ValueError(f"shared_dq at head dim {h}: a half is not whole {swizzle}-byte tiles")
    dtype = q.dtype
    k_shape = (COMPUTE_WGS, block_k, h)
    ds_shape = (COMPUTE_WGS, block_k, block_q)
    dq_shape = (COMPUTE_WGS, block_q, h)
    ds_t_shape = (block_q, block_k)  # ds, for the interpreter's transposed copy.
    if shared_dq:  # Both warpgroups' keys and ds^T in one array; two ds^T slots; dq halves.
        k_shape = (COMPUTE_WGS * block_k, h)
        ds_shape = (2, COMPUTE_WGS * block_k, block_q)
        dq_shape = (COMPUTE_WGS, block_q, h // COMPUTE_WGS)
        ds_t_shape = (block_q, COMPUTE_WGS * block_k)
        if dq_rows:
            dq_shape = (COMPUTE_WGS, block_q // COMPUTE_WGS, h)
            ds_t_shape = (block_q // COMPUTE_WGS, COMPUTE_WGS * block_k)
    tiled = _swizzled(swizzle, dtype)
    smem = (
        plgpu.SMEM((stages, block_q, h), dtype, transforms=tiled),  # q
        plgpu.SMEM((stages, block_q, h), dtype, transforms=tiled),  # d_out
        plgpu.SMEM(k_shape, dtype, transforms=tiled),  # k, then dk
        plgpu.SMEM((COMPUTE_WGS, block_k, h), dtype, transforms=tiled),  # v, then dv
        plgpu.SMEM((COMPUTE_WGS, block_k), jnp.float32),  # bias
        plgpu.SMEM(ds_shape, dtype, transforms=tiled),  # ds^T
        plgpu.SMEM(dq_shape, jnp.float32, transforms=_TILED_F32),  # dq share
        # Interpreter only: transposed q, d_out and ds, and p.
        _interpreter_buffers(
            interpret, dtype, (h, block_q), (h, block_q), ds_t_shape, (block_k, block_q)
        ),
    )
    loaded = (
        plgpu.Barrier(num_barriers=stages),
        plgpu.Barrier(num_barriers=stages),
        plgpu.Barrier(num_barriers=COMPUTE_WGS),
        plgpu.Barrier(num_barriers=COMPUTE_WGS),
        plgpu.Barrier(num_barriers=COMPUTE_WGS),
    )
    if shared_dq:  # ds_ready (per ds^T slot) and done: the compute warpgroups wait for each other.
        loaded += (
            plgpu.Barrier(num_arrivals=COMPUTE_WGS, num_barriers=2),
            plgpu.Barrier(num_arrivals=COMPUTE_WGS),
        )
    acc_shape = ((COMPUTE_WGS,) if interpret else ()) + q.shape
    dq_acc = jax.new_ref(jnp.zeros(acc_shape, jnp.float32), memory_space=plgpu.GMEM)
    out_type = [jax.ShapeDtypeStruct(k.shape, dtype), jax.ShapeDtypeStruct(v.shape, dtype)]
    if with_dbias:
        out_type.append(jax.ShapeDtypeStruct((b, n, s), jnp.float32))
    outs = _launch(
        _kernel,
        smem,
        loaded,
        stages=stages,
        scale=scale,
        block_q=block_q,
        block_k=block_k,
        overlap=overlap,
        shared_dq=shared_dq,
        dq_rows=dq_rows,
        tanh_ds=tanh_ds,
        causal=causal,
        grid=(n, s // (COMPUTE_WGS * block_k), b),
        grid_names=("heads", "kv", "batch"),
        out_type=tuple(out_type),
        interpret=interpret,
        name="sigmoid_attention_bwd_hopper",
    )(q, k, v, key_half_bias, do, q_lens, kv_lens, dq_acc)
    dq = dq_acc[...]
    if interpret:
        dq = jnp.sum(dq, axis=0)
    dq = (dq * (scale * _common.DS_SCALE[tanh_ds])).astype(dtype)
    return (dq, *outs)
