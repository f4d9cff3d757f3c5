"""The steps module's evaluation loop and update ratios, and the small shared pieces of the
training package (metrics file, frozen-group detection, atomic writes)."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from train_helpers import SYNTHETIC, smoke_config, with_frozen

from sigjax._io import atomic_write
from sigjax.data import CellLoader, make_datasets
from sigjax.evaluation import embed_cells
from sigjax.training import (
    MetricsWriter,
    build_model,
    evaluate_loss,
    frozen_groups,
    lagging_groups,
    make_mesh,
    param_groups,
    read_metrics,
)
from sigjax.training._steps import _apply, make_optimizer, make_setup, train_step
from sigjax.training._train import check_config


@pytest.fixture(scope="module")
def tiny():
    config = smoke_config(**SYNTHETIC)
    _, val, vocab = make_datasets(config.data)
    return config, build_model(config, vocab.size), val


def test_one_evaluation_loop_compiled_once_for_loss_and_embeddings(tiny):
    config, model, cells = tiny
    loss = evaluate_loss(model, cells, config)
    embedding = embed_cells(model, config, cells)
    compiled = _apply._cache_size()
    # Second calls reuse the compiled functions: nothing is traced or compiled again.
    assert evaluate_loss(model, cells, config) == loss
    np.testing.assert_array_equal(embed_cells(model, config, cells), embedding)
    assert _apply._cache_size() == compiled
    assert embedding.shape == (len(cells), config.model.embed_dim) and np.isfinite(loss)


def test_embedding_with_another_pooling_does_not_touch_the_model(tiny):
    config, model, cells = tiny
    own = embed_cells(model, config, cells)
    other = "cls" if model.pooling == "mean" else "mean"
    before = model.pooling
    changed = embed_cells(model, config, cells, pooling=other)
    assert model.pooling == before and not np.allclose(own, changed)
    np.testing.assert_array_equal(embed_cells(model, config, cells), own)
    with pytest.raises(ValueError, match="batch_size"):
        embed_cells(model, config, cells, batch_size=0)


def test_metrics_writer_keeps_complete_rows_up_to_the_resume_step(tmp_path):
    # A killed run: rows of steps 1-3, then half a line.
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "train/loss": 1.0 / s}) + "\n" for s in (1, 2, 3))
        + '{"step": 4, "train/lo'
    )
    writer = MetricsWriter(tmp_path, start_step=2)  # Resumes from the checkpoint of step 2.
    writer.write(3, {"train/loss": 0.25})
    writer.close()
    assert [(r["step"], r["train/loss"]) for r in read_metrics(tmp_path)] == [
        (1, 1.0),
        (2, 0.5),
        (3, 0.25),
    ]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3  # Each step once.


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    atomic_write(path, "old")
    atomic_write(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


# ------------------------------------------------------------------ live-network diagnostics
def _groups_by_path(tree, num_layers):
    """The groups of `param_groups`, written out from the module names (an independent check)."""
    flat = {
        "/".join(str(getattr(k, "key", k)) for k in path): np.asarray(getattr(v, "value", v))
        for path, v in nnx.to_flat_state(tree)
    }
    groups = {}
    for i in range(num_layers):
        groups[f"block_{i}/attention"] = [
            v for k, v in flat.items() if k.startswith(f"blocks/{i}/attention")
        ]
        groups[f"block_{i}/mlp"] = [v for k, v in flat.items() if k.startswith(f"blocks/{i}/mlp")]
    groups["embed"] = [v for k, v in flat.items() if k.split("/")[0].endswith("_embed")]
    groups["head"] = [
        v
        for k, v in flat.items()
        if k.split("/")[0] in ("head", "final_norm") or k.startswith("expression_")
    ]
    assert sum(map(len, groups.values())) == len(flat)  # Every parameter in one group.
    return groups


def _norm(arrays):
    return float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))


def _one_step(config, tx=None):
    mesh = make_mesh(config.mesh)
    train, _, vocab = make_datasets(config.data)
    with jax.set_mesh(mesh):
        setup, state = make_setup(config, vocab.size, mesh)
        if tx is not None:
            setup.tx = tx
            state["opt_state"] = tx.init(state["params"])
        before = jax.tree.map(np.asarray, state["params"])
        loader = CellLoader(train, batch_size=config.data.batch_size, seed=0, max_len=64)
        batch = {k: jnp.asarray(v) for k, v in next(iter(loader.iter_epoch())).items()}
        new, metrics = jax.jit(functools.partial(train_step, setup, config))(state, batch)
    return before, jax.tree.map(np.asarray, new["params"]), jax.device_get(metrics)


def test_train_step_logs_update_ratios_of_every_group():
    config = smoke_config(**SYNTHETIC, **{"model.num_layers": 2, "train.warmup_steps": 0})
    before, after, metrics = _one_step(config)
    assert bool(metrics["ok"])
    old, new = _groups_by_path(before, 2), _groups_by_path(after, 2)
    assert list(param_groups(before, 2)) == list(old)
    for name in old:
        moved = _norm([b - a for a, b in zip(old[name], new[name], strict=True)])
        # The update applied over the parameters before it (optax.apply_updates adds it).
        assert metrics[f"update_ratio/{name}"] == pytest.approx(moved / _norm(old[name]), rel=1e-3)
        assert metrics[f"update_ratio/{name}"] > 0
    assert frozen_groups(metrics) == {}


def test_a_sub_block_with_zero_learning_rate_is_named_frozen():
    config = smoke_config(**SYNTHETIC, **{"model.num_layers": 2, "train.warmup_steps": 0})
    tx, _ = make_optimizer(config.train)

    frozen_tx = with_frozen(tx, "blocks/1/mlp")  # Block 1's MLP and its LayerNorm.
    _, _, metrics = _one_step(config, frozen_tx)
    assert (
        metrics["update_ratio/block_1/mlp"] == 0.0 and metrics["update_ratio/block_1/attention"] > 0
    )
    assert list(frozen_groups(metrics)) == ["block_1/mlp"]


def _ratios(**groups):
    return {f"update_ratio/{k}": v for k, v in groups.items()}


def test_adam_eps_is_checked_and_reaches_the_optimizer():
    config = smoke_config(**SYNTHETIC, **{"train.warmup_steps": 0, "train.weight_decay": 0.0})
    assert config.train.eps == 1e-8  # optax's default: runs saved without the field read so.
    params = {"w": jnp.ones(4)}
    grads = {"w": jnp.full(4, 1e-6)}  # Far below eps=1, far above eps=1e-8.

    def first_update(eps):
        config.train.eps = eps
        tx, _ = make_optimizer(config.train)
        updates, _ = tx.update(grads, tx.init(params), params)
        return float(jnp.abs(updates["w"][0]))

    lr = config.train.learning_rate
    assert first_update(1e-8) == pytest.approx(lr, rel=1e-2)  # Adam's step: g / |g| = 1.
    assert first_update(1.0) == pytest.approx(lr * 1e-6, rel=1e-2)  # Shrunk with the gradient.
    config.train.eps = 0.0
    with pytest.raises(ValueError, match=r"train.eps: got 0.0, expected a finite number > 0"):
        check_config(config)


def test_lagging_groups_are_slow_but_not_frozen():
    healthy = _ratios(
        **{"block_0/attention": 2e-3, "block_0/mlp": 1e-3, "embed": 4e-3, "head": 3e-3}
    )
    assert lagging_groups(healthy) == {}
    # The others' median is 3e-3: 0.03x of it is 9e-5.
    assert lagging_groups({**healthy, "update_ratio/block_0/attention": 9.5e-5}) == {}
    slow = {**healthy, "update_ratio/block_0/attention": 3e-5}
    assert lagging_groups(slow) == {"block_0/attention": pytest.approx(1e-2)}
    assert frozen_groups(slow) == {}
    # Frozen (below 1e-3 x the others and 3e-3 x the ends'): named by frozen_groups, not here.
    dead = {**healthy, "update_ratio/block_0/attention": 1e-9}
    assert list(frozen_groups(dead)) == ["block_0/attention"] and lagging_groups(dead) == {}
    assert lagging_groups(slow, fraction=1e-3) == {}
    with pytest.raises(ValueError, match="fraction: got 0"):
        lagging_groups(slow, fraction=0)


def test_frozen_groups_compares_each_group_with_the_median_of_the_others():
    healthy = _ratios(
        **{"block_0/attention": 2e-3, "block_0/mlp": 1e-3, "embed": 4e-3, "head": 3e-3}
    )
    assert frozen_groups(healthy) == {}
    dead = {**healthy, "update_ratio/block_0/mlp": 1e-9, "train/loss": 2.0}
    assert frozen_groups(dead, ends_fraction=1e-9) == {"block_0/mlp": pytest.approx(1e-9 / 3e-3)}
    # No ends rule: only the others' median (3e-3) is the reference.
    assert frozen_groups(dead, ends_fraction=None) == {"block_0/mlp": pytest.approx(1e-9 / 3e-3)}
    # Below both references: the smaller factor (the ends' median is 3.5e-3).
    assert frozen_groups(dead) == {"block_0/mlp": pytest.approx(1e-9 / 3.5e-3)}
    # Just above and just below 1e-3 of the others' median (3e-3), with the second rule off.
    loose = {"ends_fraction": 1e-9}
    assert frozen_groups({**healthy, "update_ratio/block_0/mlp": 3.1e-6}, **loose) == {}
    assert list(frozen_groups({**healthy, "update_ratio/block_0/mlp": 2.9e-6}, **loose)) == [
        "block_0/mlp"
    ]
    # Every group at rest (learning rate 0 at the start of warmup): nothing is singled out.
    assert (
        frozen_groups(_ratios(**dict.fromkeys(("block_0/attention", "embed", "head"), 0.0))) == {}
    )
    # Several rows: the median of each group, so one odd step does not warn; NaN is left out.
    odd = [healthy, healthy, {**healthy, "update_ratio/block_0/mlp": 0.0}]
    assert frozen_groups(odd) == {}
    assert list(frozen_groups([dead, dead, healthy])) == ["block_0/mlp"]
    assert frozen_groups([{**healthy, "update_ratio/embed": float("nan")}]) == {}
    assert frozen_groups(_ratios(embed=0.0)) == {} and frozen_groups({"step": 1}) == {}
    with pytest.raises(ValueError, match="fraction: got 0"):
        frozen_groups(healthy, fraction=0)
    with pytest.raises(ValueError, match="ends_fraction: got -1"):
        frozen_groups(healthy, ends_fraction=-1)


def test_frozen_groups_sees_a_whole_trunk_at_rest_against_the_embedding_and_head():
    # Every block at ~1e-6 while the ends move at ~3e-3 (sigmoid without the hybrid norm at
    # 161.5M): each block group is at the median of the others, so only the second rule fires.
    blocks = {f"block_{i}/{part}": 1e-6 for i in range(4) for part in ("attention", "mlp")}
    trunk = _ratios(**blocks, embed=2e-3, head=4e-3)
    assert frozen_groups(trunk, ends_fraction=1e-9) == {}
    frozen = frozen_groups(trunk)
    assert list(frozen) == list(blocks)  # Named, in logged order; the ends are not blocks.
    assert frozen["block_0/mlp"] == pytest.approx(1e-6 / 3e-3)
    # Just above and just below 3e-3 of the ends' median (3e-3): 9e-6.
    assert frozen_groups(_ratios(**dict.fromkeys(blocks, 9.1e-6), embed=2e-3, head=4e-3)) == {}
    assert len(frozen_groups(_ratios(**dict.fromkeys(blocks, 8.9e-6), embed=2e-3, head=4e-3))) == 8
    # A live block beside frozen ones is not named; without both ends the rule is off.
    live = frozen_groups({**trunk, "update_ratio/block_3/mlp": 1e-3})
    assert "block_3/mlp" not in live and "block_0/mlp" in live
    assert frozen_groups(_ratios(**blocks, embed=2e-3)) == {}


def test_learning_rate_as_argument_gives_one_program_and_the_same_step():
    # The loop passes the peak learning rate to the jitted step: runs of a grid that differ only
    # in it compile one program (and share it through the persistent cache).
    texts, steps = [], []
    for lr in (1e-3, 3e-3):
        config = smoke_config(
            **SYNTHETIC,
            **{"model.num_layers": 1, "train.learning_rate": lr, "train.warmup_steps": 0},
        )
        mesh = make_mesh(config.mesh)
        train, _, vocab = make_datasets(config.data)
        with jax.set_mesh(mesh):
            setup, state = make_setup(config, vocab.size, mesh)
            loader = CellLoader(train, batch_size=config.data.batch_size, seed=0, max_len=64)
            batch = {k: jnp.asarray(v) for k, v in next(iter(loader.iter_epoch())).items()}
            fn = jax.jit(functools.partial(train_step, setup, config))
            texts.append(fn.lower(state, batch, np.float32(lr)).as_text())
            with_arg = jax.device_get(fn(state, batch, np.float32(lr)))
            constant = jax.device_get(fn(state, batch))  # The schedule's own constant.
        steps.append((with_arg, constant))
        np.testing.assert_allclose(with_arg[1]["train/lr"], lr, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(with_arg[0]), jax.tree.leaves(constant[0]), strict=True):
            np.testing.assert_allclose(
                np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-5, atol=1e-7
            )
    assert texts[0] == texts[1]
    # The learning rate still acts: the two runs' parameters differ after the step.
    moved = [
        float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))
        for a, b in zip(
            jax.tree.leaves(steps[0][0][0]["params"]),
            jax.tree.leaves(steps[1][0][0]["params"]),
            strict=True,
        )
    ]
    assert max(moved) > 0
