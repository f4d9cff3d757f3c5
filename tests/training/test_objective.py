"""The training objectives: dense expression targets and the combined loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sigjax.model import CellEncoder, EncoderConfig
from sigjax.training._objective import (
    expression_targets,
    info_nce,
    masked_loss,
    objective_loss,
)

VOCAB = 30


def model_config(**overrides) -> EncoderConfig:
    fields = dict(
        vocab_size=VOCAB,
        n_bins=8,
        attention="sigmoid",
        implementation="xla",
        num_layers=1,
        num_heads=2,
        embed_dim=32,
        mlp_dim=64,
        dropout=0.0,
        pooling="mean",
        dtype="float32",
        mask_prob=0.3,
        value_encoding="binned",
        masked_weight=1.0,
        expression_weight=0.0,
        expression_center=False,
    )
    return EncoderConfig(**{**fields, **overrides})


def batch():
    genes = np.array([[1, 5, 7, 9, 0], [1, 4, 0, 0, 0]], np.int32)
    values = np.array([[0, 3, 2, 1, 0], [0, 5, 0, 0, 0]], np.float32)
    targets = np.array([[0, 2.5, 1.5, 0.7, 0], [0, 3.0, 0, 0, 0]], np.float32)
    return {
        "genes": jnp.asarray(genes),
        "values": jnp.asarray(values),
        "lengths": jnp.asarray([4, 2], jnp.int32),
        "targets": jnp.asarray(targets),
    }


def test_expression_targets_are_dense_with_zeros_for_absent_genes():
    t = np.asarray(expression_targets(batch(), VOCAB))
    want = np.zeros((2, VOCAB), np.float32)
    want[0, [5, 7, 9]] = [2.5, 1.5, 0.7]
    want[1, 4] = 3.0
    np.testing.assert_allclose(t, want)


def test_objective_without_expression_is_the_masked_loss():
    model = CellEncoder(model_config(), rngs=nnx.Rngs(0))
    key = jax.random.key(1)
    loss, aux = objective_loss(model, batch(), key)
    old, count = masked_loss(model, batch(), key, 0.3)
    assert float(loss) == pytest.approx(float(old)) and int(aux["count"]) == int(count)
    assert float(aux["expression"]) == 0.0 and model.expression_query is None


@pytest.mark.parametrize("center", [False, True])
def test_expression_loss_reaches_the_cell_embedding(center):
    cfg = model_config(expression_weight=1.0, masked_weight=0.0, expression_center=center)
    model = CellEncoder(cfg, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)

    def loss(p):
        return objective_loss(nnx.merge(graphdef, p), batch(), jax.random.key(1))[0]

    grads = nnx.to_flat_state(jax.grad(loss)(params))
    norms = {
        ".".join(str(getattr(k, "key", k)) for k in path): float(jnp.linalg.norm(v[...]))
        for path, v in grads
    }
    assert norms["expression_query.kernel"] > 0
    assert any(v > 0 for k, v in norms.items() if k.startswith("blocks.0.mlp"))
    # Centred over the batch, a gene's bias could not change the loss: the decoder has none.
    assert ("expression_bias" in norms) != center
    with pytest.raises(ValueError, match="targets"):
        b = batch()
        del b["targets"]
        objective_loss(model, b, jax.random.key(1))


def test_contrastive_weight_zero_is_the_old_objective():
    # The default (0) and an explicit 0 give the same loss, bit for bit, and no contrastive term.
    cfg = model_config(expression_weight=1.0, masked_weight=0.1, expression_center=True)
    model = CellEncoder(cfg, rngs=nnx.Rngs(0))
    off = CellEncoder(model_config(**{**cfg.__dict__, "contrastive_weight": 0.0}), rngs=nnx.Rngs(0))
    key = jax.random.key(1)
    loss, aux = objective_loss(model, batch(), key)
    loss0, aux0 = objective_loss(off, batch(), key)
    assert float(loss0) == float(loss) and float(aux0["contrastive"]) == 0.0
    want = 0.1 * float(aux["masked"]) + 1.0 * float(aux["expression"])
    assert float(loss) == pytest.approx(want, rel=1e-6)


def test_contrastive_term_is_added_and_reaches_the_encoder():
    cfg = model_config(expression_weight=1.0, masked_weight=0.1, contrastive_weight=0.5)
    model = CellEncoder(cfg, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    key = jax.random.key(1)
    loss, aux = objective_loss(model, batch(), key)
    con = float(aux["contrastive"])
    # Two cells: the term lies between 0 and a bit above log(2) (chance).
    assert np.isfinite(float(loss)) and 0 < con < 2 * np.log(2)
    want = 0.1 * float(aux["masked"]) + float(aux["expression"]) + 0.5 * con
    assert float(loss) == pytest.approx(want, rel=1e-6)

    def contrastive(p):
        return objective_loss(nnx.merge(graphdef, p), batch(), key)[1]["contrastive"]

    grads = nnx.to_flat_state(jax.grad(contrastive)(params))
    norms = {
        ".".join(str(getattr(k, "key", k)) for k in path): float(jnp.linalg.norm(v[...]))
        for path, v in grads
    }
    assert all(np.isfinite(v) for v in norms.values())
    assert any(v > 0 for k, v in norms.items() if k.startswith("blocks.0.mlp"))
    assert norms["gene_embed.embedding"] > 0


def test_info_nce_prefers_matching_views():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(8, 16)), jnp.float32)
    b = a + 0.1 * jnp.asarray(rng.normal(size=(8, 16)), jnp.float32)
    shuffled = b[jnp.asarray(rng.permutation(8))]
    same, other = float(info_nce(a, b, 0.1)), float(info_nce(a, shuffled, 0.1))
    assert same < 0.1 < np.log(8) < other
    # Symmetric in the two views; and with no information, log(B).
    assert float(info_nce(b, a, 0.1)) == pytest.approx(same, rel=1e-5)
    ones = jnp.ones((8, 16))
    assert float(info_nce(ones, ones, 0.1)) == pytest.approx(np.log(8), rel=1e-5)


@pytest.mark.parametrize(
    "field, value",
    [("contrastive_weight", -0.1), ("contrastive_temperature", 0.0)],
)
def test_bad_contrastive_fields_raise(field, value):
    with pytest.raises(ValueError, match=f"model.{field}: got {value}"):
        model_config(**{field: value})


def test_info_nce_on_a_batch_sharded_mesh_matches_one_device():
    # Under an explicit mesh each device holds some cells; their negatives are on the others.
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    rng = np.random.default_rng(1)
    a = rng.normal(size=(16, 8)).astype(np.float32)
    b = (a + 0.3 * rng.normal(size=(16, 8))).astype(np.float32)
    want = float(info_nce(jnp.asarray(a), jnp.asarray(b), 0.1))
    n = jax.device_count()
    mesh = jax.make_mesh((n, 1), ("data", "fsdp"), axis_types=(AxisType.Explicit,) * 2)
    with jax.set_mesh(mesh):
        sharding = NamedSharding(mesh, P(("data", "fsdp"), None))
        got = jax.jit(lambda x, y: info_nce(x, y, 0.1))(
            jax.device_put(a, sharding), jax.device_put(b, sharding)
        )
    assert float(got) == pytest.approx(want, rel=1e-5)
