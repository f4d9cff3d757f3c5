"""CellEncoder and attention layers: shapes, padding invariance, the sigmoid/softmax switch,
attention_fn inside nnx.MultiHeadAttention."""

import functools
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

import sigjax
from sigjax.model import CellEncoder, EncoderConfig, SelfAttention, make_attention_fn
from sigjax.model._layers import column_blocks

N_BINS = 11
VOCAB = 40


def model_config(**overrides) -> EncoderConfig:
    fields = dict(
        vocab_size=VOCAB,
        n_bins=N_BINS,
        attention="sigmoid",
        implementation="xla",
        num_layers=1,
        num_heads=2,
        embed_dim=32,
        mlp_dim=64,
        dropout=0.0,
        pooling="cls",
        dtype="float32",
        value_encoding="binned",
    )
    return EncoderConfig(**{**fields, **overrides})


@functools.partial(nnx.jit, static_argnames=("deterministic",))
def forward(model, genes, values, lengths, value_mask=None, deterministic=True, dropout_key=None):
    """The model under jit (eager op-by-op dispatch is much slower on CPU)."""
    return model(
        genes,
        values,
        lengths,
        value_mask=value_mask,
        deterministic=deterministic,
        dropout_key=dropout_key,
    )


@nnx.jit
def embed(model, genes, values, lengths):
    return model.embed(genes, values, lengths)


def make_batch(lengths, length, seed=0, binned=True):
    """A batch in the data contract's format: CLS at 0, genes after, zeros in padding."""
    rng = np.random.default_rng(seed)
    b = len(lengths)
    genes = np.zeros((b, length), np.int32)
    values = np.zeros((b, length), np.float32)
    for i, n in enumerate(lengths):
        genes[i, 0] = 1
        genes[i, 1:n] = rng.choice(np.arange(3, VOCAB), n - 1, replace=False)
        values[i, 1:n] = rng.integers(1, N_BINS, n - 1) if binned else rng.gamma(2.0, 1.0, n - 1)
    return genes, values, np.asarray(lengths, np.int32)


@pytest.mark.parametrize("encoding,pooling", [("binned", "cls"), ("continuous", "mean")])
def test_output_shapes_and_padding_invariance(encoding, pooling):
    model = CellEncoder(model_config(value_encoding=encoding, pooling=pooling), rngs=nnx.Rngs(0))
    genes, values, lengths = make_batch([5, 9, 3], 16, binned=encoding == "binned")
    out = forward(model, jnp.asarray(genes), jnp.asarray(values), jnp.asarray(lengths))
    assert out["pred"].shape == (3, 16)
    assert out["hidden"].shape == (3, 16, 32)
    assert out["embedding"].shape == (3, 32)
    if encoding == "binned":
        assert out["logits"].shape == (3, 16, N_BINS)
        assert float(out["pred"].min()) >= 0.0 and float(out["pred"].max()) <= N_BINS - 1
    # Longer padding filled with junk must not change anything about the valid tokens.
    g2 = np.pad(genes, ((0, 0), (0, 48)))
    v2 = np.pad(values, ((0, 0), (0, 48)))
    for i, n in enumerate(lengths):
        g2[i, n:] = 7
        v2[i, n:] = 3
    out2 = forward(model, jnp.asarray(g2), jnp.asarray(v2), jnp.asarray(lengths))
    np.testing.assert_allclose(out2["embedding"], out["embedding"], rtol=1e-5, atol=1e-5)
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(out2["hidden"][i, :n], out["hidden"][i, :n], atol=1e-5)
    np.testing.assert_allclose(
        embed(model, jnp.asarray(g2), jnp.asarray(v2), jnp.asarray(lengths)),
        out["embedding"],
        atol=1e-5,
    )


def test_embedding_ignores_gene_order():
    # Tokens carry no position: permuting a cell's genes permutes hidden states, same embedding.
    model = CellEncoder(model_config(pooling="mean"), rngs=nnx.Rngs(1))
    genes, values, lengths = make_batch([8], 8)
    perm = np.concatenate([[0], 1 + np.random.default_rng(0).permutation(7)])
    a = embed(model, jnp.asarray(genes), jnp.asarray(values), jnp.asarray(lengths))
    b = embed(
        model, jnp.asarray(genes[:, perm]), jnp.asarray(values[:, perm]), jnp.asarray(lengths)
    )
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_value_mask_changes_the_prediction_input():
    model = CellEncoder(model_config(), rngs=nnx.Rngs(0))
    genes, values, lengths = (jnp.asarray(x) for x in make_batch([6, 6], 8))
    mask = jnp.zeros(genes.shape, bool).at[:, 2].set(True)
    plain = forward(model, genes, values, lengths)["hidden"]
    masked = forward(model, genes, values, lengths, value_mask=mask)["hidden"]
    assert not np.allclose(plain[:, 2], masked[:, 2])
    # Masking hides the value: any value at a masked position gives the same output.
    other = values.at[:, 2].set(1.0)
    np.testing.assert_allclose(
        forward(model, genes, other, lengths, value_mask=mask)["hidden"], masked, atol=1e-6
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("use_bias", [True, False])
def test_column_blocks_are_the_projections_slices(dtype, use_bias):
    """q, k, v from one matmul each equal the slices of the fused projection, in its dtype."""
    linear = nnx.Linear(16, 48, use_bias=use_bias, dtype=dtype, rngs=nnx.Rngs(1))
    if use_bias:  # A bias that is not zero, so a misplaced bias block shows.
        linear.bias[...] = jax.random.normal(jax.random.key(2), (48,))
    x = jax.random.normal(jax.random.key(0), (2, 5, 16))
    fused = linear(x)
    blocks = column_blocks(linear, x, 3)
    assert [b.shape for b in blocks] == [(2, 5, 16)] * 3
    for i, block in enumerate(blocks):
        assert block.dtype == fused.dtype == dtype
        np.testing.assert_allclose(
            np.asarray(block, np.float32),
            np.asarray(fused[..., 16 * i : 16 * (i + 1)], np.float32),
            atol=1e-5 if dtype == jnp.float32 else 2e-2,  # Blocked sums round differently.
        )


def test_sigmoid_softmax_switch_calls_the_right_op():
    x = jax.random.normal(jax.random.key(0), (2, 8, 32))
    lengths = jnp.array([8, 5], jnp.int32)
    outs = {}
    for attention in ("sigmoid", "softmax"):
        layer = SelfAttention(32, 2, attention=attention, implementation="xla", rngs=nnx.Rngs(3))
        outs[attention] = layer(x, lengths)
        # The same projections, fed to the op directly.
        qkv = layer.qkv(x).reshape(2, 8, 3, 2, 16)
        op = sigjax.sigmoid_attention if attention == "sigmoid" else sigjax.softmax_attention
        ref = op(
            qkv[:, :, 0],
            qkv[:, :, 1],
            qkv[:, :, 2],
            query_seq_lengths=lengths,
            key_value_seq_lengths=lengths,
            implementation="xla",
        )
        np.testing.assert_allclose(outs[attention], layer.out(ref.reshape(2, 8, 32)), atol=1e-5)
    assert not np.allclose(outs["sigmoid"], outs["softmax"], atol=1e-3)
    enc = {
        a: CellEncoder(model_config(attention=a), rngs=nnx.Rngs(0)) for a in ("sigmoid", "softmax")
    }
    genes, values, lens = (jnp.asarray(v) for v in make_batch([7, 4], 8))
    e_sig, e_soft = (embed(enc[a], genes, values, lens) for a in ("sigmoid", "softmax"))
    assert not np.allclose(e_sig, e_soft, atol=1e-4)


@pytest.mark.parametrize("shape", [(8, 32), (2, 8, 48), (1, 2, 8, 32)])
def test_self_attention_names_a_wrong_input_shape(shape):
    # Was a bare "not enough values to unpack" or a dot_general shape error from inside the layer.
    layer = SelfAttention(32, 2, implementation="xla", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=re.escape(f"x: got shape {shape}, expected [B, L, E=32]")):
        layer(jnp.ones(shape), jnp.array([8, 8]))


def test_self_attention_names_bad_sizes():
    with pytest.raises(ValueError, match="model.num_heads: got 0, expected at least 1"):
        SelfAttention(32, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="model.embed_dim: got 30, expected a multiple of"):
        SelfAttention(30, 4, rngs=nnx.Rngs(0))


def test_bf16_compute_keeps_float32_params():
    model = CellEncoder(model_config(dtype="bfloat16"), rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    genes, values, lengths = (jnp.asarray(v) for v in make_batch([7, 4], 8))
    out = forward(model, genes, values, lengths)
    assert out["hidden"].dtype == jnp.bfloat16
    assert out["embedding"].dtype == jnp.float32
    ref = embed(CellEncoder(model_config(), rngs=nnx.Rngs(0)), genes, values, lengths)
    np.testing.assert_allclose(out["embedding"], ref, atol=0.1)


def test_dropout_needs_a_key_and_is_off_when_deterministic():
    model = CellEncoder(model_config(dropout=0.5), rngs=nnx.Rngs(0))
    genes, values, lengths = (jnp.asarray(v) for v in make_batch([7, 4], 8))
    with pytest.raises(ValueError, match="dropout_key"):
        model(genes, values, lengths, deterministic=False)
    a = forward(model, genes, values, lengths)["hidden"]
    b = forward(model, genes, values, lengths, dropout_key=jax.random.key(0))["hidden"]
    key = jax.random.key(0)
    c = forward(model, genes, values, lengths, deterministic=False, dropout_key=key)["hidden"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_decoder_readout_keeps_the_distances_of_the_decoded_expression():
    from sigjax.data._tokenize import SPECIALS
    from sigjax.model._encoder import N_SPECIAL_TOKENS

    assert N_SPECIAL_TOKENS == len(SPECIALS)
    cfg = model_config(expression_weight=1.0, expression_center=False, readout="decoder")
    model = CellEncoder(cfg, rngs=nnx.Rngs(3))
    # A non-zero bias: it must cancel out of the distances.
    model.expression_bias[...] = jnp.linspace(-2.0, 2.0, VOCAB)
    r = np.asarray(model.readout_map())
    assert r.shape == (32, 32)
    e = np.asarray(jax.random.normal(jax.random.key(1), (6, 32)))
    decoded = np.asarray(model.predict_expression(jnp.asarray(e)))[:, N_SPECIAL_TOKENS:]
    mapped = e @ r

    def distances(x):
        return np.linalg.norm(x[:, None] - x[None], axis=-1)

    np.testing.assert_allclose(distances(mapped), distances(decoded), rtol=1e-4, atol=1e-4)
    # It is not the identity (the geometry differs from the pooled embedding's).
    assert not np.allclose(distances(mapped), distances(e), rtol=0.05)
    # embed(): the config's readout, or the one asked for; the pooled one is the old embedding.
    genes, values, lengths = (jnp.asarray(v) for v in make_batch([7, 4], 8))
    pooled = model.embed(genes, values, lengths, readout="pooled")
    np.testing.assert_allclose(pooled, model(genes, values, lengths)["embedding"], atol=1e-6)
    np.testing.assert_allclose(
        model.embed(genes, values, lengths), np.asarray(pooled) @ r, rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="readout"):
        model.embed(genes, values, lengths, readout="whitened")
    no_decoder = CellEncoder(model_config(), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="expression_weight"):
        no_decoder.embed(genes, values, lengths, readout="decoder")


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("pooling", "max", "model.pooling"),
        ("attention", "linear", "model.attention"),
        ("dtype", "float16x", "model.dtype"),
        ("embed_dim", 33, "model.embed_dim"),
        ("implementation", "triton", "model.implementation"),
        ("remat", "block", "model.remat"),
        ("readout", "whitened", "model.readout"),
        # The decoder readout needs the decoder: model_config's expression_weight is 0.
        ("readout", "decoder", "model.readout"),
    ],
)
def test_bad_config_is_a_value_error(field, value, match):
    with pytest.raises(ValueError, match=match):
        CellEncoder(model_config(**{field: value}), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("remat", ["none", "full"])
def test_op_names_say_which_block_and_part(remat):
    """Compiled ops (forward and gradient) carry block_<i>/<part> in their names, for profiles."""
    genes, values, lengths = make_batch([9, 5], 10)
    model = CellEncoder(
        model_config(num_layers=2, remat=remat, attention_output_norm=True), rngs=nnx.Rngs(0)
    )
    graphdef, state = nnx.split(model)

    def loss(state):
        return jnp.sum(nnx.merge(graphdef, state)(genes, values, lengths)["pred"])

    hlo = jax.jit(jax.grad(loss)).lower(state).compile().as_text()
    names = set(re.findall(r'op_name="([^"]*)"', hlo))
    for i in range(2):
        for part in ("attention_norm", "attention", "attention_output_norm", "mlp_norm", "mlp"):
            # e.g. jit(loss)/jvp(block_1)/mlp/... and, backward, transpose(jvp(block_1))/mlp/...
            # (with remat: .../checkpoint/mlp/... and .../checkpoint/rematted_computation/mlp/...).
            scope = re.compile(rf"block_{i}\)*/(checkpoint/)?(rematted_computation/)?{part}/")
            ops = [n for n in names if scope.search(n)]
            assert any("transpose" not in n for n in ops), scope.pattern
            assert any("transpose" in n for n in ops), scope.pattern  # The backward.


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_gives_the_same_loss_and_gradients(remat):
    genes, values, lengths = make_batch([9, 5, 7], 10, seed=2)
    ct = np.random.default_rng(1).normal(size=(3, 10)).astype(np.float32)

    @nnx.jit
    def loss_and_grads(model):
        def loss(m):
            return jnp.sum(m(genes, values, lengths)["pred"] * ct)

        return nnx.value_and_grad(loss)(model)

    out = {}
    for mode in ("none", remat):
        model = CellEncoder(model_config(num_layers=2, remat=mode), rngs=nnx.Rngs(0))
        out[mode] = loss_and_grads(model)
    (l0, g0), (l1, g1) = out["none"], out[remat]
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5)
    flat0, flat1 = jax.tree.leaves(nnx.state(g0)), jax.tree.leaves(nnx.state(g1))
    assert len(flat0) == len(flat1) > 10
    for a, b in zip(flat0, flat1, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
    assert any(np.any(np.asarray(a) != 0) for a in flat0)


def test_no_shared_submodules_in_tree_mode():
    model = CellEncoder(model_config(), rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    leaves = jax.tree.leaves(state)
    assert len({id(x) for x in leaves}) == len(leaves)
    genes, values, lengths = (jnp.asarray(v) for v in make_batch([7, 4], 8))

    @jax.jit
    def embed_state(state):
        return nnx.merge(graphdef, state).embed(genes, values, lengths)

    np.testing.assert_allclose(embed_state(state), embed(model, genes, values, lengths), atol=1e-6)


@pytest.mark.parametrize("attention", ["sigmoid", "softmax"])
def test_attention_fn_inside_nnx_multihead_attention(attention):
    kw = dict(num_heads=2, in_features=32, qkv_features=32, decode=False, rngs=nnx.Rngs(0))
    ours = nnx.MultiHeadAttention(
        **kw, attention_fn=make_attention_fn(attention, implementation="xla")
    )
    x = jax.random.normal(jax.random.key(1), (3, 8, 32))
    lengths = jnp.array([8, 5, 1], jnp.int32)
    # A padding mask [B, 1, T, S] (keys beyond the length hidden) must equal the lengths path.
    pad = jnp.arange(8)[None, :] < lengths[:, None]
    out = ours(x, mask=pad[:, None, None, :])
    q = ours.query(x)
    k = ours.key(x)
    v = ours.value(x)
    op = sigjax.sigmoid_attention if attention == "sigmoid" else sigjax.softmax_attention
    ref = op(q, k, v, key_value_seq_lengths=lengths, implementation="xla")
    np.testing.assert_allclose(out, ours.out(ref), atol=1e-5)
    # No mask: the plain op (bias -log(S) for sigmoid).
    np.testing.assert_allclose(ours(x), ours.out(op(q, k, v, implementation="xla")), atol=1e-5)
    if attention == "softmax":
        ref_fn = nnx.MultiHeadAttention(**kw)  # Flax's own softmax attention, same params.
        nnx.update(ref_fn, nnx.state(ours))
        np.testing.assert_allclose(ours(x), ref_fn(x), atol=1e-5)
    with pytest.raises(ValueError, match="dropout_rate"):
        nnx.MultiHeadAttention(**kw, dropout_rate=0.1, attention_fn=make_attention_fn(attention))(
            x, deterministic=False, rngs=nnx.Rngs(dropout=0)
        )


@pytest.mark.parametrize("attention", ["sigmoid", "softmax"])
def test_attention_fn_fully_masked_rows_are_zero_with_finite_gradients(attention):
    # nnx.make_attention_mask(pad, pad) hides every key from padded queries (and a sequence of
    # length 0 hides all): softmax over a row of -inf gave NaN there, and NaN parameter
    # gradients through the whole layer.
    kw = dict(num_heads=2, in_features=32, qkv_features=32, decode=False, rngs=nnx.Rngs(0))
    mha = nnx.MultiHeadAttention(**kw, attention_fn=make_attention_fn(attention))
    x = jax.random.normal(jax.random.key(2), (3, 8, 32))
    lengths = jnp.array([8, 5, 0], jnp.int32)
    pad = jnp.arange(8)[None, :] < lengths[:, None]
    mask = nnx.make_attention_mask(pad, pad)
    heads = mha.attention_fn(mha.query(x), mha.key(x), mha.value(x), mask=mask)
    assert np.all(np.asarray(heads)[~np.asarray(pad)] == 0)
    op = sigjax.sigmoid_attention if attention == "sigmoid" else sigjax.softmax_attention
    ref = op(
        mha.query(x),
        mha.key(x),
        mha.value(x),
        query_seq_lengths=lengths,
        key_value_seq_lengths=lengths,
        implementation="xla",
    )
    np.testing.assert_allclose(heads, ref, atol=1e-5)
    grads = nnx.grad(lambda m: jnp.sum(m(x, mask=mask) ** 2))(mha)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))


def test_attention_output_norm_bounds_the_attention_branch():
    # Scale the attention's output projection up 1000x: the block's update x_out - x (attention
    # branch + MLP branch) grows with it, unless the attention branch is LayerNorm-ed.
    lengths = jnp.array([12, 7], jnp.int32)
    x = jax.random.normal(jax.random.key(0), (2, 12, 32))
    rms = {}
    for use_norm in (False, True):
        model = CellEncoder(model_config(attention_output_norm=use_norm), rngs=nnx.Rngs(0))
        block = model.blocks[0]
        assert (block.attention_output_norm is not None) == use_norm
        block.attention.out.kernel[...] = block.attention.out.kernel[...] * 1000.0
        update = np.asarray(block(x, lengths) - x)
        rms[use_norm] = float(np.sqrt(np.mean(update**2)))
    assert rms[True] < 5.0 < 100.0 < rms[False], rms


@pytest.mark.parametrize(
    "field, value, message",
    [
        # Once a ZeroDivisionError deep in jax's initializers, or an error naming embed_dim.
        ("num_heads", 0, "model.num_heads: got 0, expected an integer >= 1"),
        ("num_heads", -1, "model.num_heads: got -1, expected an integer >= 1"),
        ("embed_dim", 0, "model.embed_dim: got 0, expected an integer >= 1"),
        ("mlp_dim", 0, "model.mlp_dim: got 0, expected an integer >= 1"),
        ("mlp_dim", -1, "model.mlp_dim: got -1, expected an integer >= 1"),
        ("n_bins", 0, "data.n_bins: got 0, expected >= 2 (bin 0 is reserved)"),
        # Once a model with no block at all, trained without a word.
        ("num_layers", 0, "model.num_layers: got 0, expected an integer >= 1"),
        ("num_layers", -1, "model.num_layers: got -1, expected an integer >= 1"),
        # Once accepted: a negative rate trained silently, a rate of 1 gave NaN at step 1.
        ("dropout", -0.1, "model.dropout: got -0.1, expected a value in [0, 1)"),
        ("dropout", 1.0, "model.dropout: got 1.0, expected a value in [0, 1)"),
        ("dropout", float("nan"), "model.dropout: got nan, expected a value in [0, 1)"),
        # Once accepted: an infinite loss at step 1.
        ("masked_weight", float("inf"), "model.masked_weight: got inf, expected a finite number"),
        (
            "contrastive_temperature",
            float("inf"),
            "model.contrastive_temperature: got inf, expected a finite number > 0",
        ),
    ],
)
def test_bad_sizes_rates_and_weights_are_refused_by_the_config(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        model_config(**{field: value})


def test_encoder_config_from_a_training_config_and_an_old_config_json():
    model = ml_collections.ConfigDict(
        dict(
            attention="softmax",
            implementation="xla",
            num_layers=2,
            num_heads=2,
            embed_dim=32,
            mlp_dim=64,
            dropout=0.0,
            pooling="mean",
            dtype="float32",
            mask_prob=0.15,
            value_encoding="binned",
        )
    )
    config = ml_collections.ConfigDict({"model": model, "data": {"n_bins": 7}})
    # A config.json written before attention_output_norm existed: the old behaviour (no norm).
    got = EncoderConfig.from_config(config, vocab_size=50)
    assert got == model_config(
        vocab_size=50, n_bins=7, attention="softmax", num_layers=2, pooling="mean"
    )
    # The old behaviour of each field added since: no norm, the masked objective alone.
    assert EncoderConfig.added_defaults() == {
        "attention_output_norm": False,
        "mask_prob": 0.15,
        "masked_weight": 1.0,
        "expression_weight": 0.0,
        "expression_center": False,
        "remat": "none",
        "readout": "pooled",
        "contrastive_weight": 0.0,
        "contrastive_temperature": 0.1,
    }
    config.model.attention_output_norm = True
    assert EncoderConfig.from_config(config, 50).attention_output_norm is True
    del config.model["embed_dim"]
    with pytest.raises(ValueError, match=r"config.model: .*missing \['embed_dim'\]"):
        EncoderConfig.from_config(config, 50)


def test_embed_with_another_pooling_leaves_the_model_as_it_was():
    model = CellEncoder(model_config(pooling="cls"), rngs=nnx.Rngs(0))
    genes, values, lengths = (jnp.asarray(v) for v in make_batch([7, 4], 8))
    cls = model.embed(genes, values, lengths)
    mean = model.embed(genes, values, lengths, pooling="mean")
    hidden = model(genes, values, lengths)["hidden"]
    np.testing.assert_allclose(cls, hidden[:, 0], atol=1e-6)
    np.testing.assert_allclose(mean[1], np.asarray(hidden[1, 1:4]).mean(0), atol=1e-5)
    assert model.pooling == "cls" and model.config.pooling == "cls"
    with pytest.raises(ValueError, match="pooling"):
        model.embed(genes, values, lengths, pooling="max")


@pytest.mark.parametrize(
    "attention, implementation", [("sigmoid", "cudnn"), ("softmax", "pallas"), ("sigmoid", "auto")]
)
def test_an_implementation_the_attention_lacks_is_refused_not_swapped(attention, implementation):
    x = jnp.ones((1, 8, 2, 16))
    with pytest.raises(ValueError, match="model.implementation"):
        sigjax.model.attend(
            x, x, x, jnp.array([8]), attention=attention, implementation=implementation
        )
    with pytest.raises(ValueError, match="model.implementation"):
        make_attention_fn(attention, implementation)


@pytest.mark.parametrize(
    "kw, match",
    [
        # Were jax's "Incompatible types for broadcasting", naming no argument (a [B, 1, T, T]
        # self-attention mask passed with S != T), and "query: got rank 3" for a rank-2 query.
        (dict(mask=jnp.ones((3, 1, 7, 7), bool)), r"mask: got shape \(3, 1, 7, 7\), expected"),
        (dict(bias=jnp.ones((3, 1, 7, 7))), r"bias: got shape \(3, 1, 7, 7\), expected"),
        (dict(query=jnp.ones((2, 16))), r"query: got shape \(2, 16\), expected \[\.\.\., T, N"),
    ],
)
def test_attention_fn_names_a_mask_bias_or_query_of_the_wrong_shape(kw, match):
    q, k = jnp.ones((3, 7, 2, 16)), jnp.ones((3, 5, 2, 16))
    args = dict(query=q, key=k, value=k) | kw
    for attention in ("sigmoid", "softmax"):
        with pytest.raises(ValueError, match=match):
            make_attention_fn(attention)(**args)


def test_attention_fn_refuses_a_kernel_request_it_cannot_run_with_a_mask():
    fn = make_attention_fn("sigmoid", "pallas")
    x = jnp.ones((1, 8, 2, 16))
    with pytest.raises(ValueError, match="implementation: got 'pallas' with a mask"):
        fn(x, x, x, mask=jnp.ones((1, 2, 8, 8), bool))
    # The XLA path is what a mask needs, so "xla" and None run.
    for impl in (None, "xla"):
        assert make_attention_fn("sigmoid", impl)(x, x, x, mask=jnp.ones((1, 2, 8, 8), bool)).shape
