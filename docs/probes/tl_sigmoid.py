"""Triton-language sigmoid attention forward (probe, not project code yet).

Layout [B, T, N, H]; per-sequence lengths; halved scalar bias per sequence.
"""

import triton
import triton.language as tl


@triton.jit
def _tanh_approx(x):
    return tl.inline_asm_elementwise(
        "tanh.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
    )


@triton.jit
def _tanh_exact(x):
    return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0


@triton.jit
def _weights(q, k_ptrs, half_scale, hb, APPROX: tl.constexpr):
    """sigmoid(q k^T scale + bias) of one tile, from the halved logits."""
    s = tl.dot(q, tl.trans(tl.load(k_ptrs))) * half_scale + hb
    if APPROX:
        return 0.5 * _tanh_approx(s) + 0.5
    return 0.5 * _tanh_exact(s) + 0.5


@triton.jit
def sigmoid_fwd_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    hb_ptr,
    qlen_ptr,
    kvlen_ptr,
    T,
    S,
    N,
    half_scale,
    o_ptr,
    H: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    APPROX: tl.constexpr,
    WS: tl.constexpr,
    STAGES: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bn = tl.program_id(1)
    b = pid_bn // N
    n = pid_bn % N
    q_len = tl.load(qlen_ptr + b)
    kv_len = tl.load(kvlen_ptr + b)
    hb = tl.load(hb_ptr + b)
    row_stride = N * H
    base = b.to(tl.int64) * T * row_stride + n * H
    kbase = b.to(tl.int64) * S * row_stride + n * H
    q_start = pid_m * BLOCK_M
    offs_m = q_start + tl.arange(0, BLOCK_M)
    offs_h = tl.arange(0, H)
    offs_n = tl.arange(0, BLOCK_N)
    q = tl.load(q_ptr + base + offs_m[:, None] * row_stride + offs_h[None, :])
    acc = tl.zeros((BLOCK_M, H), tl.float32)
    end = tl.cdiv(kv_len, BLOCK_N)
    full_end = kv_len // BLOCK_N
    if CAUSAL:
        end = tl.minimum(end, tl.cdiv(tl.minimum(q_start + BLOCK_M, q_len), BLOCK_N))
        full_end = tl.minimum(full_end, (q_start + 1) // BLOCK_N)
    end = tl.where(q_start < q_len, end, 0)
    full_end = tl.minimum(full_end, end)
    k_ptrs = k_ptr + kbase + offs_n[:, None] * row_stride + offs_h[None, :]
    v_ptrs = v_ptr + kbase + offs_n[:, None] * row_stride + offs_h[None, :]
    for j in tl.range(0, full_end, num_stages=STAGES, warp_specialize=WS):
        v = tl.load(v_ptrs + j * BLOCK_N * row_stride)
        p = _weights(q, k_ptrs + j * BLOCK_N * row_stride, half_scale, hb, APPROX)
        acc = tl.dot(p.to(v.dtype), v, acc)
    for j in range(full_end, end):
        v = tl.load(v_ptrs + j * BLOCK_N * row_stride)
        p = _weights(q, k_ptrs + j * BLOCK_N * row_stride, half_scale, hb, APPROX)
        k_idx = j * BLOCK_N + offs_n
        keep = k_idx[None, :] < kv_len
        if CAUSAL:
            keep = keep & (k_idx[None, :] <= offs_m[:, None])
        p = tl.where(keep, p, 0.0)
        acc = tl.dot(p.to(v.dtype), v, acc)
    tl.store(
        o_ptr + base + offs_m[:, None] * row_stride + offs_h[None, :],
        acc.to(o_ptr.dtype.element_ty),
    )
