"""Every config in configs/ loads and builds its model; stress configs have their stated sizes."""

import importlib
import pathlib
import sys

import jax
import numpy as np
import pytest
from flax import nnx

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `configs` is a top-level package of the repo.

from sigjax.training import build_model  # noqa: E402

NAMES = sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem != "__init__")


def n_params(config, vocab_size: int) -> int:
    model = nnx.eval_shape(lambda: build_model(config, vocab_size))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("name", NAMES)
def test_config_loads_and_builds(name):
    config = importlib.import_module(f"configs.{name}").get_config()
    assert config.model.attention in ("sigmoid", "softmax")
    assert n_params(config, 100) > 0


@pytest.mark.parametrize(
    ("name", "vocab", "low", "high"),
    [("stress_160m", 10_003, 160e6, 163e6), ("stress_small", 6_003, 18e6, 23e6)],
)
def test_stress_config_sizes_and_no_clipping(name, vocab, low, high):
    config = importlib.import_module(f"configs.{name}").get_config()
    assert low <= n_params(config, vocab) <= high
    assert config.train.grad_clip_norm == 0.0
    assert config.data.max_len == (8192 if name == "stress_160m" else 2048)


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("pretrain_pooled", 40e6, 42e6), ("pretrain_pooled_100m", 105e6, 112e6)],
)
def test_pooled_config_sizes(name, low, high):
    """The two zero-shot sizes over the pooled corpus' 29,807 tokens, as docs/results.md states."""
    config = importlib.import_module(f"configs.{name}").get_config()
    assert low <= n_params(config, 29_807) <= high
    assert config.data.dataset == "pooled" and not config.data.bucket_by_length
