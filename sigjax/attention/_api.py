"""Public attention entry points: `sigmoid_attention` and the `softmax_attention` baseline.

Both take the layout of `jax.nn.dot_product_attention`: query [B, T, N, H], key/value [B, S, N, H].
"""

import math
import numbers
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from sigjax.attention import _reference
from sigjax.attention._sharding import like_query, run_per_shard

Implementation = Literal["pallas", "xla"] | None
SoftmaxImplementation = Literal["cudnn", "xla"] | None
# One spelling per choice; None is the automatic choice.
SIGMOID_IMPLEMENTATIONS = (None, "pallas", "xla")
SOFTMAX_IMPLEMENTATIONS = (None, "cudnn", "xla")
_FLOAT_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 256


def _fail(argument: str, got, expected: str):
    raise ValueError(f"{argument}: got {got}, expected {expected}")


def check_implementation(
    implementation, choices: tuple, op: str, name: str = "implementation"
) -> None:
    """Raises unless `implementation` is one of `choices` (None meaning automatic).

    Args:
      implementation: the requested implementation.
      choices: the accepted values, e.g. `SIGMOID_IMPLEMENTATIONS`.
      op: the op's name, for the message.
      name: the argument's name in the caller's terms (e.g. "model.implementation").

    Raises:
      ValueError: naming the argument, the value and the accepted ones.
    """
    if implementation in choices and (implementation is None or isinstance(implementation, str)):
        return
    names = ", ".join(repr(c) for c in choices if c is not None)
    # The string "None" is what `--config.model.implementation=None` gives: the command line has
    # no way to write None, which is the configs' default.
    hint = (
        " (write None for the automatic choice; on the command line, leave the field out)"
        if implementation in ("auto", "", "None", "none")
        else ""
    )
    _fail(name, repr(implementation), f"None (automatic), {names} for {op}{hint}")


def _is_concrete(x) -> bool:
    try:
        np.asarray(x)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return False
    return True


def _check_lengths(name: str, lengths, batch: int, limit: int, limit_name: str) -> jax.Array:
    if lengths is None:
        return jnp.full((batch,), limit, dtype=jnp.int32)
    lengths = jnp.asarray(lengths) if not isinstance(lengths, jax.Array) else lengths
    if lengths.shape != (batch,):
        _fail(name, f"shape {lengths.shape}", f"shape ({batch},) (one length per sequence)")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        _fail(name, f"dtype {lengths.dtype}", "an integer dtype")
    if _is_concrete(lengths):
        values = np.asarray(lengths)
        if values.size and (values.min() < 0 or values.max() > limit):
            _fail(
                name,
                f"values in [{values.min()}, {values.max()}]",
                f"lengths in [0, {limit}] ({limit_name})",
            )
    # Traced lengths cannot be checked: they are clamped to [0, limit], so every implementation
    # sees the same valid lengths (and the default sigmoid bias counts the clamped keys).
    return jnp.clip(lengths.astype(jnp.int32), 0, limit)


def _check_inputs(query, key, value, bias, query_seq_lengths, key_value_seq_lengths):
    for name, x in (("query", query), ("key", key), ("value", value)):
        if not hasattr(x, "ndim"):
            _fail(name, type(x).__name__, "an array of rank 4 [B, T|S, N, H]")
        if x.ndim != 4:
            _fail(name, f"rank {x.ndim}", "rank 4 [B, T|S, N, H]")
        if x.dtype not in _FLOAT_DTYPES:
            _fail(name, f"dtype {x.dtype}", "float32, bfloat16 or float16")
    b, t, n, h = query.shape
    if key.shape[0] != b or key.shape[2:] != (n, h):
        _fail("key", f"shape {key.shape}", f"[B={b}, S, N={n}, H={h}] to match query {query.shape}")
    if value.shape != key.shape:
        _fail("value", f"shape {value.shape}", f"the key shape {key.shape}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        _fail("key/value", f"dtypes {key.dtype}/{value.dtype}", f"the query dtype {query.dtype}")
    if not MIN_HEAD_DIM <= h <= MAX_HEAD_DIM:
        _fail("query", f"head dim {h}", f"a head dim in [{MIN_HEAD_DIM}, {MAX_HEAD_DIM}]")
    s = key.shape[1]
    if bias is not None:
        if not hasattr(bias, "ndim"):
            _fail("bias", type(bias).__name__, "an array")
        if bias.dtype == jnp.bool_:  # A mask would be added to the logits as 0 and 1.
            _fail(
                "bias",
                "dtype bool",
                "an additive float bias (padding: the lengths; a mask: make_attention_fn)",
            )
        if bias.ndim == 2:
            if bias.shape != (b, s):
                _fail(
                    "bias",
                    f"shape {bias.shape}",
                    f"[B, S] = ({b}, {s}) or broadcastable to [B, N, T, S]",
                )
        else:
            try:
                jnp.broadcast_shapes(bias.shape, (b, n, t, s))
            except ValueError:
                _fail(
                    "bias",
                    f"shape {bias.shape}",
                    f"[B, S] = ({b}, {s}) or broadcastable to {(b, n, t, s)}",
                )
    q_lens = _check_lengths("query_seq_lengths", query_seq_lengths, b, t, f"T={t}")
    kv_lens = _check_lengths("key_value_seq_lengths", key_value_seq_lengths, b, s, f"S={s}")
    return q_lens, kv_lens


def _resolve_scale(scale, head_dim: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    # Python and NumPy numbers, and concrete 0-d arrays (1 / jnp.sqrt(h)); the kernels take the
    # scale as a constant, so a traced one is refused.
    number = isinstance(scale, numbers.Real) and not isinstance(scale, bool)
    if isinstance(scale, jax.Array) and scale.shape == () and _is_concrete(scale):
        number = jnp.issubdtype(scale.dtype, jnp.floating) or jnp.issubdtype(
            scale.dtype, jnp.integer
        )
    if not number or not math.isfinite(float(scale)):
        _fail("scale", repr(scale), "a finite number (not traced) or None (1/sqrt(H))")
    return float(scale)


def _resolve_causal(is_causal) -> bool:
    # It selects a kernel variant (static): Python and NumPy bools, 0 or 1, and None (False).
    if is_causal is None:
        return False
    if isinstance(is_causal, (bool, np.bool_)):
        return bool(is_causal)
    if isinstance(is_causal, numbers.Integral) and is_causal in (0, 1):
        return bool(is_causal)
    _fail("is_causal", repr(is_causal), "True or False (not traced)")


def default_sigmoid_bias(kv_lens: Int[Array, " B"]) -> Float[Array, " B"]:
    """The paper's bias, -log(number of valid keys); a sequence with no valid key gets 0."""
    return -jnp.log(jnp.maximum(kv_lens, 1).astype(jnp.float32))


def _resolve_sigmoid_bias(sigmoid_bias, kv_lens: jax.Array, batch: int) -> jax.Array:
    if sigmoid_bias is None:
        return default_sigmoid_bias(kv_lens)
    try:
        array = jnp.asarray(sigmoid_bias)
    except TypeError:  # A string or another non-numeric object.
        array = None
    if array is None or not (
        jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)
    ):
        _fail("sigmoid_bias", repr(sigmoid_bias), f"None, a float, or shape ({batch},)")
    if array.shape not in ((), (batch,)):
        _fail("sigmoid_bias", f"shape {array.shape}", f"None, a float, or shape ({batch},)")
    return jnp.broadcast_to(array.astype(jnp.float32), (batch,))


def _default_backend_is_gpu() -> bool:
    return jax.default_backend() == "gpu"


def _traced(x) -> bool:
    """Whether x may be differentiated: a traced value (numbers and concrete arrays never are, so
    the kernels skip the bias gradient for them)."""
    return isinstance(x, jax.core.Tracer)


def sigmoid_attention(
    query: Float[Array, "B T N H"],
    key: Float[Array, "B S N H"],
    value: Float[Array, "B S N H"],
    bias: Float[Array, "B S"] | jax.Array | None = None,
    *,
    scale: float | None = None,
    sigmoid_bias: float | Float[Array, " B"] | None = None,
    is_causal: bool = False,
    query_seq_lengths: Int[Array, " B"] | None = None,
    key_value_seq_lengths: Int[Array, " B"] | None = None,
    implementation: Implementation = None,
    exact_sigmoid: bool = False,
    kernel_config=None,
) -> Float[Array, "B T N H"]:
    """Sigmoid attention: out[b, i] = sum_j sigmoid(scale q_i.k_j + sigmoid_bias_b + bias_bj) v_j.

    The sum runs over valid keys j < key_value_seq_lengths[b] (and j <= i when causal); rows of
    padded queries (i >= query_seq_lengths[b]) are 0 and padded positions get exactly zero gradient.
    What padded positions hold (NaN included) reaches no valid output or gradient, except in the
    Hopper kernels (`KernelConfig.hopper_fwd`/`hopper_bwd`), which still read it.

    Args:
      query: [B, T, N, H] queries, float32, bfloat16 or float16.
      key: [B, S, N, H] keys, same dtype as query.
      value: [B, S, N, H] values, same dtype as query.
      bias: optional additive logit bias, [B, S] (one value per key, every implementation) or, for
        implementation="xla" only, any shape broadcastable to [B, N, T, S].
      scale: logit scale, a finite number (Python, NumPy, or a concrete 0-d array; not traced);
        default 1/sqrt(H).
      sigmoid_bias: None for the paper's -log(valid keys of sequence b), else a float or [B].
      is_causal: mask keys after the query (key j <= query i); a static bool (None: False).
      query_seq_lengths: [B] int, valid queries per sequence; default T. Concrete values must lie
        in [0, T]; traced values (under jax.jit) are clamped to [0, T].
      key_value_seq_lengths: [B] int, valid keys per sequence; default S. Concrete values must lie
        in [0, S]; traced values are clamped to [0, S].
      implementation: None (automatic: the Pallas kernel on GPU, "xla" elsewhere), "pallas" (the
        kernel; interpret mode off GPU) or "xla" (the reference). Other values raise.
      exact_sigmoid: the Pallas kernel on GPU computes sigmoid with the fast tanh.approx
        instruction in float32 (about 2.5e-3 relative error in bf16 outputs); True uses exp and a
        division instead. Ignored by "xla", which is always exact.
      kernel_config: a `pallas_kernels.sigmoid_attention.KernelConfig` overriding the tuned
        table (tiles, warps, stages, fused backward); Pallas only.

    Returns:
      [B, T, N, H] output in the query dtype.

    Raises:
      ValueError: naming the argument, on wrong ranks, shapes, dtypes, head dims, lengths (when
        concrete), scale, sigmoid_bias, implementation names, or a kernel_config that is not a
        KernelConfig or comes with implementation "xla".
    """
    check_implementation(implementation, SIGMOID_IMPLEMENTATIONS, "sigmoid_attention")
    if kernel_config is not None and implementation == "xla":
        _fail("kernel_config", kernel_config, "None with implementation='xla' (Pallas only)")
    q_lens, kv_lens = _check_inputs(
        query, key, value, bias, query_seq_lengths, key_value_seq_lengths
    )
    scale = _resolve_scale(scale, query.shape[-1])
    is_causal = _resolve_causal(is_causal)
    sb = _resolve_sigmoid_bias(sigmoid_bias, kv_lens, query.shape[0])
    if implementation is None:
        implementation = "pallas" if _default_backend_is_gpu() else "xla"
    if implementation == "xla":
        key, value = like_query(query, key, value)
        return _reference.sigmoid_attention_xla(
            query, key, value, bias, sb, q_lens, kv_lens, scale=scale, is_causal=is_causal
        )
    if implementation == "pallas":
        if bias is not None and bias.ndim != 2:
            _fail(
                "bias",
                f"shape {bias.shape}",
                "[B, S] for implementation='pallas' (use 'xla' for full biases)",
            )
        from sigjax.attention import _pallas  # Keeps Pallas out of the import path of xla users.

        config_type = _pallas.kernels.KernelConfig
        if kernel_config is not None and not isinstance(kernel_config, config_type):
            _fail("kernel_config", repr(kernel_config), "None or a KernelConfig")

        return _pallas.sigmoid_attention_pallas(
            query,
            key,
            value,
            bias,
            sb,
            q_lens,
            kv_lens,
            scale=scale,
            is_causal=is_causal,
            exact_sigmoid=exact_sigmoid,
            kernel_config=kernel_config,
            bias_needs_grad=_traced(bias) or _traced(sigmoid_bias),
        )
    raise AssertionError(implementation)  # Unreachable: checked above.


def softmax_attention(
    query: Float[Array, "B T N H"],
    key: Float[Array, "B S N H"],
    value: Float[Array, "B S N H"],
    bias: Float[Array, "B S"] | jax.Array | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Int[Array, " B"] | None = None,
    key_value_seq_lengths: Int[Array, " B"] | None = None,
    implementation: SoftmaxImplementation = None,
) -> Float[Array, "B T N H"]:
    """Softmax attention with sigmoid_attention's signature and padding rules: the baseline.

    Uses `jax.nn.dot_product_attention` (cuDNN flash attention on GPU where it supports the case,
    XLA otherwise). Rows of padded queries and of sequences with no valid key are 0. With "xla",
    a key with a -inf bias is masked too: a row the bias hides entirely is 0, not NaN.

    Args:
      query, key, value, bias, scale, is_causal, query_seq_lengths, key_value_seq_lengths: as in
        `sigmoid_attention`.
      implementation: None (automatic: on GPU cuDNN where it supports the case, else XLA;
        elsewhere XLA), "cudnn" (raises off GPU and where cuDNN refuses the case) or "xla".
        Other values raise.

    Returns:
      [B, T, N, H] output in the query dtype.

    Raises:
      ValueError: as `sigmoid_attention`.
    """
    check_implementation(implementation, SOFTMAX_IMPLEMENTATIONS, "softmax_attention")
    if implementation == "cudnn" and not _default_backend_is_gpu():
        _fail(
            "implementation",
            f"'cudnn' on the {jax.default_backend()} backend",
            "None or 'xla' off GPU (cuDNN runs on NVIDIA GPUs only)",
        )
    q_lens, kv_lens = _check_inputs(
        query, key, value, bias, query_seq_lengths, key_value_seq_lengths
    )
    scale = _resolve_scale(scale, query.shape[-1])
    is_causal = _resolve_causal(is_causal)
    t = query.shape[1]
    if implementation == "xla" or (implementation is None and not _default_backend_is_gpu()):
        key, value = like_query(query, key, value)
        return _reference.softmax_attention_xla(
            query, key, value, bias, q_lens, kv_lens, scale=scale, is_causal=is_causal
        )
    lengths_given = query_seq_lengths is not None or key_value_seq_lengths is not None

    def cudnn(q, k, v, bias_, q_lens_, kv_lens_):
        full_bias = None
        if bias is not None:
            full_bias = (bias_[:, None, None, :] if bias_.ndim == 2 else bias_).astype(q.dtype)
        kw = dict(
            bias=full_bias,
            scale=scale,
            is_causal=is_causal,
            query_seq_lengths=q_lens_ if lengths_given else None,
            key_value_seq_lengths=kv_lens_ if lengths_given else None,
        )
        if implementation == "cudnn":
            return jax.nn.dot_product_attention(q, k, v, implementation="cudnn", **kw)
        # None: jax's own None means XLA (which stores T x S scores); prefer cuDNN's flash
        # attention and fall back to XLA only for cases cuDNN refuses (checked at trace time).
        try:
            return jax.nn.dot_product_attention(q, k, v, implementation="cudnn", **kw)
        except (ValueError, NotImplementedError, RuntimeError, TypeError):
            return jax.nn.dot_product_attention(q, k, v, implementation="xla", **kw)

    if bias is not None and bias.ndim != 2:  # A full bias is not split per shard here.
        out = cudnn(query, key, value, bias, q_lens, kv_lens)
    else:
        # cuDNN calls run per shard, like the Pallas kernels; `None` stands in for no bias.
        extra = (bias,) if bias is not None else ()
        out = run_per_shard(
            lambda q, k, v, *rest: cudnn(q, k, v, *(rest if bias is not None else (None, *rest))),
            query,
            (query, key, value),
            (*extra, q_lens, kv_lens),
            what="softmax_attention",
        )
    if not lengths_given:
        return out
    row_ok = (jnp.arange(t)[None, :] < q_lens[:, None]) & (kv_lens[:, None] > 0)
    return jnp.where(row_ok[:, :, None, None], out, 0).astype(query.dtype)
