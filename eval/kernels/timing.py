"""Timing one compiled call: warm-up, then the median (and min, max) of timed samples."""

import math
import time

import jax
import numpy as np


def time_callable(fn, args, *, reps: int, warmup: int, min_sample_s: float) -> dict:
    """Median time of one call, blocking on the results.

    Args:
      fn: the (compiled) function.
      args: its arguments.
      reps: timed samples.
      warmup: untimed calls first.
      min_sample_s: a sample runs `inner` back-to-back calls, enough to last this long, and is
        divided by `inner`, so per-call dispatch overhead is hidden as it is in a training step.

    Returns:
      dict with "time_s" (median), "time_min_s", "time_max_s", "reps", "inner" and "samples_s"
      (every sample's seconds per call, in order).
    """
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    single = time.perf_counter() - t0
    inner = int(min(100, max(1, math.ceil(min_sample_s / max(single, 1e-9)))))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn(*args)
        jax.block_until_ready(out)
        samples.append((time.perf_counter() - t0) / inner)
    return {
        "time_s": float(np.median(samples)),
        "time_min_s": float(np.min(samples)),
        "time_max_s": float(np.max(samples)),
        "reps": reps,
        "inner": inner,
        "samples_s": [float(x) for x in samples],
    }
