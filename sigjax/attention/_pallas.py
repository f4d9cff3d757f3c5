"""The Pallas kernels behind `sigmoid_attention`: alignment padding, custom VJP, sharding.

Kernels see one shard and block-aligned shapes. This module pads T, S and H up to what the kernels
need, wires forward and backward into a `jax.custom_vjp`, and, for inputs sharded over a mesh with
explicit axes, runs everything per shard under `jax.shard_map`.
"""

import contextlib
import contextvars
import dataclasses
import functools

import jax
import jax.numpy as jnp

from pallas_kernels import sigmoid_attention as kernels
from pallas_kernels.sigmoid_attention import hopper
from pallas_kernels.sigmoid_attention.config import next_power_of_2
from sigjax.attention._reference import zero_padding
from sigjax.attention._sharding import is_sharded, run_per_shard

# None: interpret exactly when the default backend is not a GPU. Tests force it either way.
_FORCE_INTERPRET: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "sigjax_pallas_interpret", default=None
)


@contextlib.contextmanager
def force_interpret(interpret: bool):
    """Runs the Pallas kernels in (or out of) interpret mode inside the block, on any backend."""
    token = _FORCE_INTERPRET.set(interpret)
    try:
        yield
    finally:
        _FORCE_INTERPRET.reset(token)


def _interpret() -> bool:
    """Whether the kernels run in interpret mode: as `force_interpret` says, else off GPU."""
    interpret = _FORCE_INTERPRET.get()
    return jax.default_backend() != "gpu" if interpret is None else interpret


def _asks_hopper(config: kernels.KernelConfig | None) -> bool:
    """Whether a given kernel config asks for a Hopper (Mosaic GPU) kernel (the tables' configs
    never do in interpret mode: `table_config`)."""
    return config is not None and (config.hopper_fwd or config.hopper_bwd)


@dataclasses.dataclass(frozen=True)
class _Static:
    scale: float
    is_causal: bool
    config: kernels.KernelConfig
    approx_sigmoid: bool
    interpret: bool
    with_dbias: bool


def _kernel_kwargs(st: _Static) -> dict:
    return dict(
        scale=st.scale,
        is_causal=st.is_causal,
        config=st.config,
        approx_sigmoid=st.approx_sigmoid,
        interpret=st.interpret,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def _attention(q, k, v, half_bias, q_lens, kv_lens, st: _Static):
    if _use_hopper(st, q, forward=True):
        # Its rows of padded queries are 0 already.
        return hopper.fused_forward(
            q,
            k,
            v,
            # One scalar per sequence unless a per-key bias is given (the kernel masks padding).
            half_bias if half_bias.ndim == 1 else _key_half_bias(half_bias, kv_lens, k.shape[1]),
            q_lens,
            kv_lens,
            scale=st.scale,
            causal=st.is_causal,
            interpret=_mosaic_interpret(st),
        )
    out = kernels.forward(q, k, v, half_bias, q_lens, kv_lens, **_kernel_kwargs(st))
    # The Triton kernels leave rows of padded queries unspecified (cheaper than a select there).
    return zero_padding(out, q_lens)


def _attention_fwd(q, k, v, half_bias, q_lens, kv_lens, st: _Static):
    out = _attention(q, k, v, half_bias, q_lens, kv_lens, st)
    return out, (q, k, v, half_bias, q_lens, kv_lens)


def _attention_bwd(st: _Static, residuals, d_out):
    q, k, v, half_bias, q_lens, kv_lens = residuals
    d_out = d_out.astype(q.dtype)
    # Padded query rows of the output are constant 0, so their cotangent must not flow: the
    # Hopper backward clears those rows of d_out itself (one pass over d_out less).
    if _use_hopper(st, q):
        args = (q, k, v, half_bias, d_out, q_lens, kv_lens)
        dq, dk, dv, *dbias = _hopper_backward(st, *args)
        dbias = dbias[0] if dbias else None
    else:
        args = (q, k, v, half_bias, zero_padding(d_out, q_lens), q_lens, kv_lens)
        kw = _kernel_kwargs(st)
        dk, dv, dbias, dq = kernels.backward_dkv(*args, **kw, with_dbias=st.with_dbias)
        if not st.config.fused_bwd:
            dq = kernels.backward_dq(*args, **kw)
    dq = zero_padding(dq, q_lens)
    if dbias is None:
        d_half_bias = jnp.zeros_like(half_bias)
    else:
        # The kernel sums d(loss)/d(logit) over queries per head; half_bias enters as logit / 2.
        d_half_bias = 2.0 * jnp.sum(dbias, axis=1)
    return dq, dk, dv, d_half_bias, None, None


_attention.defvjp(_attention_fwd, _attention_bwd)


def _is_hopper() -> bool:
    device = jax.devices()[0]
    return str(getattr(device, "compute_capability", "")).startswith("9.")


def _use_hopper(st: _Static, q, forward: bool = False) -> bool:
    """Whether a Mosaic GPU kernel runs: asked for, applicable, on a Hopper GPU.

    In interpret mode it runs in Mosaic GPU's interpreter (only when a test asks for it).
    """
    if not (st.config.hopper_fwd if forward else st.config.hopper_bwd):
        return False
    return hopper_unavailable(q.shape[-1], q.dtype, interpret=st.interpret) is None


def hopper_unavailable(head_dim: int, dtype, *, interpret: bool = False) -> str | None:
    """Why the Hopper (Mosaic GPU) kernels would not serve such a call, None if they would.

    With `KernelConfig.hopper_bwd`/`hopper_fwd` on, sharded inputs included (each GPU runs the
    kernels on its shard under `jax.shard_map`); benchmarks use it to refuse labelling the
    Triton kernels' time as the Hopper ones'.
    """
    h_pad = max(16, next_power_of_2(head_dim))
    why_not = hopper.supported(head_dim=h_pad, dtype=dtype)
    if why_not is None and not interpret and not _is_hopper():
        why_not = "not a Hopper GPU (compute capability 9.x)"
    return why_not


def _mosaic_interpret(st: _Static):
    if not st.interpret:
        return False
    from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams

    return InterpretGPUParams()


def _key_half_bias(half_bias, kv_lens, s: int):
    """[B, S] float32 halved logit bias per key, PADDED_KEY_BIAS on padded keys."""
    if half_bias.ndim == 1:
        half_bias = jnp.broadcast_to(half_bias[:, None], (kv_lens.shape[0], s))
    keys = jnp.arange(s, dtype=jnp.int32)[None, :] < kv_lens[:, None]
    return jnp.where(keys, half_bias.astype(jnp.float32), hopper.PADDED_KEY_BIAS)


def _hopper_backward(st: _Static, q, k, v, half_bias, d_out, q_lens, kv_lens):
    return hopper.fused_backward(
        q,
        k,
        v,
        _key_half_bias(half_bias, kv_lens, k.shape[1]),
        d_out,
        q_lens,
        kv_lens,
        scale=st.scale,
        causal=st.is_causal,
        with_dbias=st.with_dbias,
        shared_dq=st.config.hopper_shared_dq,
        dq_rows=st.config.hopper_dq_rows,
        interpret=_mosaic_interpret(st),
    )


def table_config(head_dim: int, dtype, seq_len: int, interpret: bool) -> kernels.KernelConfig:
    """The tuned configuration `sigmoid_attention` picks when no `kernel_config` is given.

    Interpret mode runs on any device: the tables of a GPU kind do not apply, and a table's Hopper
    kernels are for GPUs (only a test sends them to the Mosaic GPU interpreter).
    """
    device_kind = None if interpret else jax.devices()[0].device_kind
    h_pad = max(16, next_power_of_2(head_dim))
    config = kernels.default_config(h_pad, jnp.dtype(dtype).name, seq_len, device_kind)
    if interpret:
        config = dataclasses.replace(config, hopper_bwd=False, hopper_fwd=False)
    return config


def _fit_blocks(bs: kernels.KernelConfig, t: int, s: int) -> kernels.KernelConfig:
    """Shrinks tiles that are longer than a short sequence, so it is not padded to a full block."""
    tq = max(16, next_power_of_2(t))
    tk = max(16, next_power_of_2(s))
    return dataclasses.replace(
        bs,
        block_q=min(bs.block_q, tq),
        block_q_dq=min(bs.block_q_dq, tq),
        block_q_dkv=min(bs.block_q_dkv, tq),
        block_k=min(bs.block_k, tk),
        block_k_dq=min(bs.block_k_dq, tk),
        block_k_dkv=min(bs.block_k_dkv, tk),
    )


def _pad_axis(x: jax.Array, axis: int, size: int) -> jax.Array:
    if x.shape[axis] == size:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, widths)


def _per_shard(
    q,
    k,
    v,
    half_bias,
    q_lens,
    kv_lens,
    *,
    scale,
    is_causal,
    config,
    exact_sigmoid,
    with_dbias,
    sharded,
):
    _, t, _, h = q.shape
    s = k.shape[1]
    if 0 in (*q.shape, s):
        # No query or no key: the output is 0 (empty, or a sum over no keys), and a kernel grid
        # or block over an empty axis does not lower.
        return jnp.zeros(q.shape, q.dtype)
    h_pad = max(16, next_power_of_2(h))  # Zero head-dim columns change no dot product.
    interpret = _interpret()
    if config is None:
        config = table_config(h, q.dtype, max(t, s), interpret)
    if sharded and interpret and _asks_hopper(config):
        # Mosaic GPU's interpreter fails on shards run side by side (seen with 2 CPU devices:
        # "Barrier remains allocated"; with 4: a hang); compiled, each GPU runs its own shard.
        # The Triton kernels' interpreter serves sharded inputs there.
        config = dataclasses.replace(config, hopper_bwd=False, hopper_fwd=False)
    config = _fit_blocks(config, t, s)
    t_pad = -(-t // config.q_multiple) * config.q_multiple
    s_pad = -(-s // config.k_multiple) * config.k_multiple
    st = _Static(
        scale=scale,
        is_causal=is_causal,
        config=config,
        approx_sigmoid=not exact_sigmoid and not interpret,
        interpret=interpret,
        with_dbias=with_dbias,
    )
    q_p = _pad_axis(_pad_axis(q, 1, t_pad), 3, h_pad)
    k_p = _pad_axis(_pad_axis(k, 1, s_pad), 3, h_pad)
    v_p = _pad_axis(_pad_axis(v, 1, s_pad), 3, h_pad)
    if half_bias.ndim == 2:
        half_bias = _pad_axis(half_bias, 1, s_pad)
    out = _attention(q_p, k_p, v_p, half_bias, q_lens, kv_lens, st)
    return out[:, :t, :, :h]


def sigmoid_attention_pallas(
    query,
    key,
    value,
    bias,
    sigmoid_bias,
    q_lens,
    kv_lens,
    *,
    scale,
    is_causal,
    exact_sigmoid,
    kernel_config,
    bias_needs_grad,
):
    """Validated inputs in, kernel output out (see `sigjax.sigmoid_attention`)."""
    # Logits enter the kernels halved (sigmoid(x) = 0.5 + 0.5 tanh(x / 2)). Without a per-key
    # bias and without a bias gradient, one scalar per sequence is enough: [B] instead of [B, S].
    if bias is None and not bias_needs_grad:
        half_bias = jax.lax.stop_gradient(0.5 * sigmoid_bias)
    else:
        half_bias = jnp.broadcast_to(0.5 * sigmoid_bias[:, None], (key.shape[0], key.shape[1]))
        if bias is not None:
            half_bias = half_bias + 0.5 * bias.astype(jnp.float32)
    fn = functools.partial(
        _per_shard,
        scale=scale,
        is_causal=is_causal,
        config=kernel_config,
        exact_sigmoid=exact_sigmoid,
        with_dbias=bias_needs_grad,
        sharded=is_sharded(query),
    )
    return run_per_shard(
        fn,
        query,
        (query, key, value),
        (half_bias, q_lens, kv_lens),
        what="implementation='pallas'",
        one_device_direct=True,
        # Pallas-Triton's interpreter fails on arrays typed with an explicit mesh, even one that
        # splits nothing (a ShardingTypeError in its dynamic_update_slice: training and its
        # evaluation with `implementation="pallas"` on CPU); under shard_map it sees plain
        # arrays. Mosaic GPU's interpreter (Hopper kernels, asked for by tests only) is the
        # other way round, and compiled kernels take them either way.
        always_shard_map=_interpret() and not _asks_hopper(kernel_config),
    )
