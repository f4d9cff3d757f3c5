"""Benchmark shapes, FLOP counts and the argument specs shared by the benchmark, tuner and tests.

Shapes follow TritonSigmoid's benchmark: 16,384 tokens per batch and hidden 2048, so N = 2048 / H
and B = 16384 / T. Padding p draws per-sequence lengths (seeded) whose mean valid fraction is
1 - p. `arg_specs(QUICK_SPECS)` is what `--quick` times on a CPU and what the interpret-mode
kernel suite checks; `arg_specs()` is the GPU sweep, whose short lengths the compiled suite checks.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

TOKENS_PER_BATCH = 16384
HIDDEN = 2048
# Shortest timed sample: shorter calls are timed several back to back (eval.kernels.timing).
MIN_SAMPLE_S = 1e-2
BENCH_IMPLS = ("pallas", "xla", "cudnn", "triton_sigmoid")
# pallas_hopper: the Pallas kernels with the Hopper (Mosaic GPU) backward; fwdbwd only, since its
# forward is pallas's. pallas_mosaic: the Hopper forward and backward (KernelConfig.hopper_fwd).
KNOWN_IMPLS = (*BENCH_IMPLS, "pallas_exact", "pallas_hopper", "pallas_mosaic")
MODES = ("fwd", "fwdbwd")
FWDBWD_FACTOR = 3.5


@dataclasses.dataclass(frozen=True)
class SpecGrid:
    """Values whose every combination makes the benchmark's shapes (see `benchmark_shapes`)."""

    head_dims: tuple[int, ...]
    seq_lens: tuple[int, ...]
    paddings: tuple[float, ...] = (0.0, 0.25, 0.5)
    causals: tuple[bool, ...] = (False, True)
    modes: tuple[str, ...] = MODES
    tokens: int = TOKENS_PER_BATCH
    hidden: int = HIDDEN
    dtype: str = "bfloat16"


# The GPU sweep (`python -m eval kernels`) and the tiny one that Pallas interpret mode runs in
# seconds on a CPU (`--quick`, and the interpret-mode kernel suite).
FULL_SPECS = SpecGrid(head_dims=(64, 128), seq_lens=(1024, 2048, 4096, 8192, 16384))
QUICK_SPECS = SpecGrid(head_dims=(32,), seq_lens=(32, 64), tokens=128, hidden=64)
FULL_MEMORY_SEQ_LENS = (4096, 8192, 16384)
QUICK_MEMORY_SEQ_LENS = (32, 64)


@dataclasses.dataclass(frozen=True)
class Shape:
    """One benchmark configuration: [B, T, N, H] inputs with per-sequence valid lengths.

    Attributes:
      head_dim: H.
      heads: N.
      seq_len: T (= S, self-attention).
      batch: B.
      padding: requested mean padded fraction of the T slots (0 = dense).
      causal: mask keys after the query.
      mode: "fwd" or "fwdbwd" (forward, then the gradients of q, k and v).
      dtype: input dtype name, e.g. "bfloat16".
      lengths: B valid lengths (queries and keys alike).
    """

    head_dim: int
    heads: int
    seq_len: int
    batch: int
    padding: float
    causal: bool
    mode: str
    dtype: str
    lengths: tuple[int, ...]

    @property
    def padded(self) -> bool:
        """Whether any sequence is shorter than T (lengths are then passed to the kernels)."""
        return min(self.lengths) < self.seq_len

    @property
    def flops(self) -> float:
        """Useful floating-point operations, counted on valid tokens only."""
        return attention_flops(self.heads, self.head_dim, self.lengths, self.causal, self.mode)

    def params(self) -> dict:
        """JSON-serialisable parameters, with the valid token count and the actual padding."""
        d = dataclasses.asdict(self)
        d["lengths"] = list(self.lengths)
        d["valid_tokens"] = int(sum(self.lengths))
        d["valid_fraction"] = d["valid_tokens"] / (self.batch * self.seq_len)
        return d


def sequence_lengths(batch: int, seq_len: int, padding: float, seed: int = 0) -> np.ndarray:
    """Per-sequence valid lengths, seeded, whose mean valid fraction is 1 - padding.

    Lengths are drawn uniformly around the mean, then nudged one token at a time until their sum
    is round(batch * seq_len * (1 - padding)), so the valid fraction matches to one token.

    Args:
      batch: number of sequences B (>= 1).
      seq_len: padded length T (>= 1).
      padding: mean padded fraction in [0, 1); 0 gives every sequence length T.
      seed: numpy seed of the draw.

    Returns:
      int32 [B] lengths in [1, T].

    Raises:
      ValueError: if batch or seq_len is below 1, padding is outside [0, 1), or the padding is too
        large for every sequence to keep one token.
    """
    if batch < 1:
        raise ValueError(f"batch: got {batch}, expected >= 1")
    if seq_len < 1:
        raise ValueError(f"seq_len: got {seq_len}, expected >= 1")
    if not 0 <= padding < 1:
        raise ValueError(f"padding: got {padding}, expected a fraction in [0, 1)")
    if padding == 0:
        return np.full(batch, seq_len, np.int32)
    total = int(round(batch * seq_len * (1 - padding)))
    if total < batch:
        raise ValueError(
            f"padding: got {padding}, expected at most {1 - 1 / seq_len} so that each of the "
            f"{batch} sequences of length {seq_len} keeps one valid token"
        )
    keep = 1 - padding
    spread = min(keep, 1 - keep) * 0.8  # Stays inside [0, 1] around the mean fraction.
    rng = np.random.default_rng(seed)
    lens = np.clip(np.rint(rng.uniform(keep - spread, keep + spread, batch) * seq_len), 1, seq_len)
    lens = lens.astype(np.int64)
    i = 0
    while lens.sum() != total:  # Each step moves the sum one token towards the target.
        step = 1 if lens.sum() < total else -1
        if 1 <= lens[i % batch] + step <= seq_len:
            lens[i % batch] += step
        i += 1
    return lens.astype(np.int32)


def attention_flops(heads: int, head_dim: int, lengths, causal: bool, mode: str) -> float:
    """4 N H sum_b len_b^2 (two matmuls of 2 flops per multiply-add), halved when causal,
    x3.5 for forward+backward.

    Args:
      heads: N.
      head_dim: H.
      lengths: [B] valid lengths.
      causal: halve the count (the lower triangle only).
      mode: "fwd" or "fwdbwd".

    Returns:
      The flop count as a float.

    Raises:
      ValueError: on an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode: got {mode!r}, expected one of {MODES}")
    f = 4.0 * heads * head_dim * float(np.sum(np.asarray(lengths, np.float64) ** 2))
    if causal:
        f /= 2
    return f * FWDBWD_FACTOR if mode == "fwdbwd" else f


def benchmark_shapes(
    head_dims,
    seq_lens,
    paddings,
    causals,
    modes,
    *,
    tokens: int = TOKENS_PER_BATCH,
    hidden: int = HIDDEN,
    dtype: str = "bfloat16",
    seed: int = 0,
) -> list[Shape]:
    """Every combination of the given values, with N = hidden / H and B = max(tokens // T, 1).

    Args:
      head_dims, seq_lens, paddings, causals, modes: the values to combine.
      tokens: tokens per batch (B T).
      hidden: model width (N H).
      dtype: input dtype name.
      seed: seed of the length draw (the same for every shape, so runs are comparable).

    Returns:
      The shapes, H-major, then T, padding, causal, mode.

    Raises:
      ValueError: if a head dim does not divide hidden, or on an unknown mode.
    """
    shapes = []
    for h in head_dims:
        if h < 1 or hidden % h:
            raise ValueError(f"head_dims: got {h}, expected a divisor of hidden={hidden}")
        for t in seq_lens:
            b = max(tokens // t, 1)
            for pad in paddings:
                lens = tuple(int(x) for x in sequence_lengths(b, t, pad, seed))
                for causal in causals:
                    for mode in modes:
                        if mode not in MODES:
                            raise ValueError(f"modes: got {mode!r}, expected some of {MODES}")
                        shapes.append(
                            Shape(h, hidden // h, t, b, float(pad), bool(causal), mode, dtype, lens)
                        )
    return shapes


def arg_specs(grid: SpecGrid = FULL_SPECS, seed: int = 0, **overrides) -> list[Shape]:
    """The shapes of a spec grid, with any of its fields overridden (e.g. seq_lens=(1024,)).

    Args:
      grid: `FULL_SPECS` or `QUICK_SPECS`.
      seed: seed of the length draw.
      **overrides: `SpecGrid` fields to replace.

    Returns:
      `benchmark_shapes` of the grid.
    """
    g = dataclasses.replace(grid, **overrides)
    return benchmark_shapes(
        g.head_dims,
        g.seq_lens,
        g.paddings,
        g.causals,
        g.modes,
        tokens=g.tokens,
        hidden=g.hidden,
        dtype=g.dtype,
        seed=seed,
    )


def memory_shapes(head_dims, seq_lens, *, hidden: int, dtype: str) -> list[Shape]:
    """Dense, non-causal forward+backward shapes with B = 1, one per (H, T), T ascending."""
    return [
        Shape(h, hidden // h, t, 1, 0.0, False, "fwdbwd", dtype, (t,))
        for h in head_dims
        for t in sorted(seq_lens)
    ]


def memory_groups(shapes: list[Shape], fresh: bool = False) -> list[list[Shape]]:
    """`shapes` split into the runs of one fresh process each: one per head dim, T ascending
    (one per shape if `fresh`). A process's peak bytes in use never go down, so a group must not
    follow a larger footprint with a smaller one: after H=64 at T=16,384, H=128 at T=4,096 would
    report the earlier peak (seen on an H100, 2026-12-06)."""
    if fresh:
        return [[s] for s in shapes]
    by_head = {}
    for s in shapes:
        by_head.setdefault(s.head_dim, []).append(s)
    return [sorted(group, key=lambda s: s.seq_len) for group in by_head.values()]


def make_inputs(shape: Shape, seed: int = 1):
    """Random normal q, k, v and output cotangent do (never zeros), and int32 lengths.

    Args:
      shape: the configuration.
      seed: jax.random seed.

    Returns:
      (q, k, v, lengths, do): [B, T, N, H] arrays in shape.dtype, lengths int32 [B].
    """
    dims = (shape.batch, shape.seq_len, shape.heads, shape.head_dim)
    keys = jax.random.split(jax.random.key(seed), 4)
    q, k, v, do = (jax.random.normal(kk, dims, jnp.float32).astype(shape.dtype) for kk in keys)
    return q, k, v, jnp.asarray(shape.lengths, jnp.int32), do
