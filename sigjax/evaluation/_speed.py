"""Whole-training-step speed, sigmoid vs softmax: step time, tokens per second and MFU.

The kernel benchmark (`python -m eval kernels`) times the attention op alone; this times what a
user pays for: the jitted `train_step` of a config (embeddings, projections, LayerNorms, MLPs,
the attention kernel, the loss, the optimizer update), with everything but `model.attention`
identical between the two runs. Batches are dense (every cell `data.max_len` tokens) unless
`padding` > 0: then cell lengths are spread evenly over [(1 - 2 padding) max_len, max_len], so
that this share of the batch is padding, as with real cells of varied length. Tokens/s, FLOPs and
MFU count valid tokens only (the kernels skip padded blocks; what they save shows up as time).

Model FLOPs follow the PaLM convention (Chowdhery et al. 2022, appendix B): per token, 6 x the
matmul parameters (embedding lookups excluded: they multiply nothing) plus 12 x layers x width x
sequence length for the attention scores and their weighted sum, forward and backward. A
recomputing backward does more work than this; MFU counts only what the model needs.
"""

import datetime
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sigjax._io import git_commit
from sigjax.model import ATTENTIONS

# Dense bf16 tensor-core peak of a device kind (vendor data sheets), the denominator of MFU.
PEAK_FLOPS = {"NVIDIA H100": 989e12, "NVIDIA H200": 989e12, "NVIDIA A100": 312e12}
# Parameters read by lookup, not by a matmul (no FLOPs in the 6·N count).
_LOOKUP_PARAMS = ("gene_embed", "value_embed", "mask_embed")
_SPECIAL_TOKENS = 3  # <pad>, <cls>, <mask>: a synthetic vocabulary needs them too.


def matmul_params(model) -> int:
    """Parameters of `model` used in matrix products (all but the embedding lookup tables)."""
    _, params = nnx.split(model, nnx.Param)
    total = 0
    for path, leaf in nnx.to_flat_state(params):
        if str(getattr(path[0], "key", path[0])) not in _LOOKUP_PARAMS:
            total += int(np.prod(getattr(leaf, "value", leaf).shape))
    return total


def step_flops(n_params: int, *, lengths, layers: int, width: int) -> float:
    """Model FLOPs of one training step on cells of `lengths` valid tokens each (PaLM)."""
    lengths = np.asarray(lengths, np.float64)
    return float(np.sum(lengths * (6 * n_params + 12 * layers * width * lengths)))


def peak_flops(device) -> float | None:
    """The device's dense bf16 peak, or None for a kind not in `PEAK_FLOPS` (e.g. CPU)."""
    kind = getattr(device, "device_kind", "")
    return next((v for k, v in PEAK_FLOPS.items() if kind.startswith(k)), None)


def synthetic_batch(config, vocab_size: int, padding: float = 0.0, seed: int = 0) -> dict:
    """One batch of data.batch_size random cells of up to data.max_len tokens.

    padding: expected share of padded tokens, in [0, 0.5]; lengths span
      [(1 - 2 padding) max_len, max_len], evenly spaced (0: every cell max_len tokens).

    Raises:
      ValueError: padding outside [0, 0.5].
    """
    if not 0.0 <= float(padding) <= 0.5:
        raise ValueError(f"padding: got {padding}, expected a share of padded tokens in [0, 0.5]")
    d, rng = config.data, np.random.default_rng(seed)
    b, length = int(d.batch_size), int(d.max_len)
    shortest = max(2, int(round((1.0 - 2.0 * float(padding)) * length)))
    lengths = np.full((b,), length, np.int32)
    if padding > 0:  # Evenly spread (not drawn), so that a small batch has the asked-for share.
        lengths = rng.permutation(np.linspace(shortest, length, b).round().astype(np.int32))
    genes = rng.integers(_SPECIAL_TOKENS, vocab_size, size=(b, length)).astype(np.int32)
    genes[:, 0] = 1  # <cls>
    if d.value_encoding == "binned":
        values = rng.integers(1, d.n_bins, size=(b, length)).astype(np.float32)
    else:
        values = rng.gamma(2.0, 1.0, size=(b, length)).astype(np.float32)
    values[:, 0] = 0.0
    targets = rng.gamma(2.0, 1.0, size=(b, length)).astype(np.float32)  # log1p values.
    targets[:, 0] = 0.0
    pad = np.arange(length)[None, :] >= lengths[:, None]
    genes[pad], values[pad], targets[pad] = 0, 0.0, 0.0  # <pad> tokens, as the loader pads.
    labels = np.zeros(b, np.int32)
    return {
        "genes": genes,
        "values": values,
        "targets": targets,
        "lengths": lengths,
        "labels": labels,
    }


def _check_timing(steps: int, warmup: int, repeats: int) -> None:
    for name, value in (("steps", steps), ("warmup", warmup), ("repeats", repeats)):
        if int(value) < 1:
            raise ValueError(f"{name}: got {value}, expected an integer >= 1")


def _prepared_step(config, *, warmup: int, padding: float):
    """The jitted `train_step` of `config` on one device after `warmup` steps (compilation):
    (sample, record), where sample(steps) runs `steps` more steps and returns the seconds per
    step, and record(samples) makes `time_train_step`'s dict from such samples."""
    from sigjax.training._mesh import single_device_mesh
    from sigjax.training._steps import build_model, make_setup, train_step

    vocab_size = int(config.data.get("synthetic", {}).get("n_genes", 1000)) + _SPECIAL_TOKENS
    model = build_model(config, vocab_size)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    n_matmul = matmul_params(model)
    mesh = single_device_mesh()
    with jax.set_mesh(mesh):
        setup, state = make_setup(config, vocab_size, mesh)
        step = jax.jit(lambda s, b: train_step(setup, config, s, b), donate_argnums=0)
        host_batch = synthetic_batch(config, vocab_size, padding)
        batch = {k: jnp.asarray(v) for k, v in host_batch.items()}
        for _ in range(warmup):
            state, metrics = step(state, batch)
        jax.block_until_ready(state)
    if not bool(metrics["ok"]):
        raise ValueError(f"config: a warm-up step was not finite ({metrics['train/loss']})")
    carry = {"state": state}

    def sample(steps: int) -> float:
        with jax.set_mesh(mesh):
            state = carry["state"]
            t0 = time.perf_counter()
            for _ in range(steps):
                state, _ = step(state, batch)
            jax.block_until_ready(state)
            carry["state"] = state
        return (time.perf_counter() - t0) / steps

    def record(samples: list) -> dict:
        m = config.model
        b, length = int(config.data.batch_size), int(config.data.max_len)
        lengths = host_batch["lengths"]
        flops = step_flops(n_matmul, lengths=lengths, layers=m.num_layers, width=m.embed_dim)
        t = float(np.median(samples))
        peak = peak_flops(mesh.devices.flat[0])
        return {
            "attention": m.attention,
            "step_time_s": t,
            "step_times_s": list(samples),
            "tokens_per_s": float(lengths.sum()) / t,
            "valid_share": float(lengths.sum()) / (b * length),
            "params": n_params,
            "matmul_params": n_matmul,
            "flops_per_step": flops,
            "tflops": flops / t / 1e12,
            "mfu": None if peak is None else flops / t / peak,
        }

    return sample, record


def time_train_step(
    config, *, steps: int = 20, warmup: int = 3, repeats: int = 3, padding: float = 0.0
) -> dict:
    """Times `train_step` of `config` on one device with synthetic batches.

    Args:
      config: a training config (configs/*.py); data.batch_size cells of data.max_len tokens.
      steps: steps per timed sample (the device is synchronised once per sample).
      warmup: untimed steps first (compilation).
      repeats: samples; the median is reported.
      padding: expected share of padded tokens (`synthetic_batch`).

    Returns:
      {attention, step_time_s (median), step_times_s, tokens_per_s (valid tokens), valid_share,
      params, matmul_params, flops_per_step, tflops, mfu (None without a known peak)}.

    Raises:
      ValueError: steps, warmup or repeats < 1, or padding outside [0, 0.5].
    """
    _check_timing(steps, warmup, repeats)
    sample, record = _prepared_step(config, warmup=warmup, padding=padding)
    return record([sample(steps) for _ in range(repeats)])


def compare_train_speed(
    config, *, steps: int = 20, warmup: int = 3, repeats: int = 3, padding: float = 0.0
) -> dict:
    """`time_train_step` for sigmoid and softmax (nothing else changed, same keywords), with
    provenance.

    Both steps are compiled and warmed up first; then their samples alternate, and which goes
    first alternates from one round of samples to the next. In kernel A/Bs on an H100 the variant
    compiled and timed first ran up to ~5% faster, whichever it was (docs/benchmarks.md run 20;
    place in the round or compile order, not known): so neither attention always leads a round.
    Until 2026-12-06 all of sigmoid's samples ran before softmax's.

    Returns:
      {"runs": [sigmoid record, softmax record], "sigmoid_over_softmax": step-time ratio,
      "order", "ratio_by_leader": {attention: the rounds' sigmoid / softmax sample ratios where
      it went first}, "date", "device", "jax", "commit", "xla_flags" (the process's XLA_FLAGS),
      "config": the shared fields}.
    """
    _check_timing(steps, warmup, repeats)
    prepared = []
    for attention in ATTENTIONS:
        c = config.copy_and_resolve_references()
        c.model.attention = attention
        prepared.append(_prepared_step(c, warmup=warmup, padding=padding))
    samples = [[] for _ in prepared]
    for r in range(repeats):
        order = range(len(prepared)) if r % 2 == 0 else reversed(range(len(prepared)))
        for i in order:
            samples[i].append(prepared[i][0](steps))
    runs = [record(times) for (_, record), times in zip(prepared, samples, strict=True)]
    per_round = [a / b for a, b in zip(*samples, strict=True)]
    device = jax.devices()[0]
    return {
        "runs": runs,
        "sigmoid_over_softmax": runs[0]["step_time_s"] / runs[1]["step_time_s"],
        "order": "samples alternate between the attentions; the first of a round alternates",
        "ratio_by_leader": {name: per_round[r::2] for r, name in enumerate(ATTENTIONS)},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": f"{device.platform}: {getattr(device, 'device_kind', '')}",
        "host": platform.node(),
        "jax": jax.__version__,
        "commit": git_commit(),
        # Compiler options change what is timed; run 25 tried some (docs/benchmarks.md).
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "config": {
            "batch_size": int(config.data.batch_size),
            "max_len": int(config.data.max_len),
            "padding": float(padding),
            "remat": config.model.remat,
            "num_layers": int(config.model.num_layers),
            "embed_dim": int(config.model.embed_dim),
            "dtype": config.model.dtype,
            "implementation": config.model.implementation,
        },
    }


def speed_markdown(result: dict) -> str:
    """A table row per attention plus the step-time ratio, for docs/training.md."""
    lines = [
        "| attention | step time (s) | valid tokens/s | valid share | TFLOPS (model) | MFU |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(
            f"| {r['attention']} | {r['step_time_s']:.4f} | {r['tokens_per_s']:.0f} | "
            f"{r.get('valid_share', 1.0):.2f} | {r['tflops']:.1f} | {mfu} |"
        )
    lines.append(f"\nsigmoid / softmax step time: {result['sigmoid_over_softmax']:.3f}")
    by_leader = result.get("ratio_by_leader")
    if by_leader:  # Whether going first in a round moved the ratio (docs/benchmarks.md run 21).
        parts = [f"{k} first {', '.join(f'{x:.3f}' for x in v)}" for k, v in by_leader.items() if v]
        lines.append(f"per round: {'; '.join(parts)}")
    return "\n".join(lines)
