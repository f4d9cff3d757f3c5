"""Where a training step's time goes: forward, forward+backward, whole step, per objective term.

Issue 15's study grid ran at ~65 ms of GPU time per step of configs/study_base.py (25M parameters,
32 x 512 tokens, ~2.9 TFLOP: ~45 TFLOPS, docs/results.md "First attempt on the H200"). This times,
on one device with one synthetic batch (`sigjax.evaluation._speed.synthetic_batch`), for each
attention: the model's forward pass; value_and_grad of the objective; the whole jitted train step;
and the whole step with only the masked term (expression_weight=0) and only the expression term
(masked_weight=0). Prints one JSON line per measurement.

  PYTHONPATH=$PWD python docs/probes/step_parts.py --config=configs/study_base.py [--set=...]
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
from flax import nnx

from eval._overrides import load_config, override, parse_sets
from sigjax.evaluation._speed import synthetic_batch
from sigjax.training._mesh import single_device_mesh
from sigjax.training._objective import objective_loss
from sigjax.training._steps import make_setup, train_step


def timed(fn, args, steps: int) -> float:
    """Median seconds per call of a jitted `fn` over 3 samples of `steps` calls (after one)."""
    out = fn(*args)
    jax.block_until_ready(out)
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = fn(*args)
        jax.block_until_ready(out)
        samples.append((time.perf_counter() - t0) / steps)
    return sorted(samples)[1]


def measure(config, steps: int) -> dict:
    vocab = int(config.data.get("synthetic", {}).get("n_genes", 1000)) + 3
    mesh = single_device_mesh()
    with jax.set_mesh(mesh):
        setup, state = make_setup(config, vocab, mesh)
        batch = {k: jnp.asarray(v) for k, v in synthetic_batch(config, vocab).items()}
        key = jax.random.key(0)

        def forward(params, b):
            model = nnx.merge(setup.graphdef, params)
            return model(b["genes"], b["values"], b["lengths"], deterministic=True)["embedding"]

        def grads(params, b):
            def loss(p):
                return objective_loss(nnx.merge(setup.graphdef, p), b, key)[0]

            return jax.value_and_grad(loss)(params)

        step = jax.jit(lambda s, b: train_step(setup, config, s, b))
        return {
            "forward_s": timed(jax.jit(forward), (state["params"], batch), steps),
            "value_and_grad_s": timed(jax.jit(grads), (state["params"], batch), steps),
            "train_step_s": timed(step, (state, batch), steps),
        }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/study_base.py")
    p.add_argument("--set", action="append", default=[], help="section.field=value override")
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    print(json.dumps({"device": str(jax.devices()[0]), "jax": jax.__version__}))
    variants = {
        "both": {},
        "masked_only": {"model.expression_weight": 0.0, "model.readout": "pooled"},
        "expression_only": {"model.masked_weight": 0.0},
    }
    for attention in ("sigmoid", "softmax"):
        for name, extra in variants.items():
            config = load_config(args.config)
            override(config, {**parse_sets(args.set), "model.attention": attention, **extra})
            row = {"attention": attention, "objective": name, **measure(config, args.steps)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
