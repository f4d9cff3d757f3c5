"""The Hopper kernels (pallas_kernels/sigmoid_attention/hopper.py) against the XLA reference.

In interpret mode it runs in Mosaic GPU's interpreter on CPU (slow: small shapes only); compiled
on a Hopper GPU (marked `gpu`). Also checked: when the fused Hopper backward (and the forward, off
by default) run and when the call falls back to the Triton kernels.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import sigjax
from pallas_kernels.sigmoid_attention import KernelConfig, hopper
from sigjax.attention import _pallas

HOPPER = KernelConfig(hopper_bwd=True)

# (B, T, S, N, H, padded, dtype); T and S not multiples of the tiles, H=48 padded to 64.
CASES = [
    (2, 100, 130, 2, 48, True, "bfloat16"),
    (1, 64, 200, 1, 128, False, "float16"),
    (3, 70, 90, 1, 64, True, "bfloat16"),
]
COMPILED_CASES = CASES + [
    (2, 1000, 1000, 4, 64, True, "bfloat16"),
    (1, 4096, 4096, 16, 128, False, "bfloat16"),
    (4, 2048, 2048, 8, 128, True, "float16"),
]
TOL = {"bfloat16": 3e-2, "float16": 1e-2}


def make_inputs(case, seed=0):
    b, t, s, n, h, padded, dtype = case
    rng = np.random.default_rng(seed)
    q, k, v = (jnp.asarray(rng.normal(size=(b, length, n, h)), dtype) for length in (t, s, s))
    ql = kl = None
    if padded:
        ql = rng.integers(1, t + 1, size=b)
        kl = rng.integers(1, s + 1, size=b)
        ql[0], kl[-1] = t, max(1, s // 3)
        ql, kl = jnp.asarray(ql, jnp.int32), jnp.asarray(kl, jnp.int32)
    ct = jnp.asarray(rng.normal(size=q.shape), jnp.float32)
    return q, k, v, ql, kl, ct


def rel_err(x, ref):
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-6))


class Calls:
    """Counts calls of hopper.fused_backward (or another kernel of hopper.py, patched in)."""

    def __init__(self, monkeypatch, name="fused_backward"):
        self.n = 0
        real = getattr(hopper, name)

        def counted(*args, **kwargs):
            self.n += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(hopper, name, counted)


class HopperSuite:
    interpret: bool

    def grads(self, q, k, v, ct, config, **kw):
        def loss(q, k, v):
            with _pallas.force_interpret(self.interpret):
                out = sigjax.sigmoid_attention(
                    q, k, v, implementation="pallas", kernel_config=config, **kw
                )
            return jnp.sum(out.astype(jnp.float32) * ct)

        return jax.grad(loss, (0, 1, 2))(q, k, v)

    def check(self, case, monkeypatch):
        q, k, v, ql, kl, ct = make_inputs(case)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
        calls = Calls(monkeypatch)
        got = self.grads(q, k, v, ct, HOPPER, **kw)
        assert calls.n == 1
        up = [x.astype(jnp.float32) for x in (q, k, v)]

        def ref_loss(q, k, v):
            out = sigjax.sigmoid_attention(q, k, v, implementation="xla", **kw)
            return jnp.sum(out * ct)

        ref = jax.grad(ref_loss, (0, 1, 2))(*up)
        for name, g, r in zip("qkv", got, ref, strict=True):
            assert g.shape == r.shape and g.dtype == q.dtype
            assert np.all(np.isfinite(np.asarray(g, np.float32))), name
            assert rel_err(g, r) < TOL[case[-1]], (name, rel_err(g, r))
        if ql is not None:  # Padded queries and keys get exactly zero gradient.
            for bi in range(q.shape[0]):
                assert np.all(np.asarray(got[0][bi, int(ql[bi]) :]) == 0)
                assert np.all(np.asarray(got[1][bi, int(kl[bi]) :]) == 0)
                assert np.all(np.asarray(got[2][bi, int(kl[bi]) :]) == 0)

    def check_forward(self, case, monkeypatch):
        q, k, v, ql, kl, ct = make_inputs(case, seed=1)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
        fwd, bwd = Calls(monkeypatch, "fused_forward"), Calls(monkeypatch)
        config = dataclasses.replace(HOPPER, hopper_fwd=True)

        def loss(q, k, v):
            with _pallas.force_interpret(self.interpret):
                out = sigjax.sigmoid_attention(
                    q, k, v, implementation="pallas", kernel_config=config, **kw
                )
            return jnp.sum(out.astype(jnp.float32) * ct), out

        (_, out), grads = jax.value_and_grad(loss, (0, 1, 2), has_aux=True)(q, k, v)
        assert fwd.n == 1 and bwd.n == 1
        up = [x.astype(jnp.float32) for x in (q, k, v)]
        ref = sigjax.sigmoid_attention(*up, implementation="xla", **kw)
        assert out.dtype == q.dtype and rel_err(out, ref) < TOL[case[-1]], rel_err(out, ref)
        if ql is not None:
            for bi in range(q.shape[0]):
                assert np.all(np.asarray(out[bi, int(ql[bi]) :]) == 0)
        assert all(np.all(np.isfinite(np.asarray(g, np.float32))) for g in grads)

    def test_falls_back_where_it_does_not_apply(self, monkeypatch):
        q, k, v, ql, kl, ct = make_inputs((1, 40, 40, 1, 64, True, "bfloat16"))
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
        calls = Calls(monkeypatch)
        self.grads(q, k, v, ct, HOPPER, is_causal=True, **kw)
        self.grads(q, k, v, ct, HOPPER, sigmoid_bias=-2.0, **kw)  # A bias gradient is asked.
        self.grads(*(x.astype(jnp.float32) for x in (q, k, v)), ct, HOPPER, **kw)
        self.grads(q, k, v, ct, dataclasses.replace(HOPPER, hopper_bwd=False), **kw)
        assert calls.n == 0


class TestHopperInterpret(HopperSuite):
    interpret = True

    @pytest.mark.parametrize("case", CASES, ids=str)
    def test_gradients_match_reference(self, case, monkeypatch):
        self.check(case, monkeypatch)

    @pytest.mark.parametrize("case", CASES[:2], ids=str)
    def test_forward_matches_reference(self, case, monkeypatch):
        self.check_forward(case, monkeypatch)

    def test_table_configs_do_not_reach_the_interpreter(self, monkeypatch):
        q, k, v, ql, kl, ct = make_inputs((1, 40, 40, 1, 64, True, "bfloat16"))
        table = dataclasses.replace(_pallas.kernels.default_config(64, "bfloat16"), hopper_bwd=True)
        monkeypatch.setattr(_pallas.kernels, "default_config", lambda *a, **k: table)
        calls = Calls(monkeypatch)
        self.grads(q, k, v, ct, None, query_seq_lengths=ql, key_value_seq_lengths=kl)
        assert calls.n == 0

    def test_sharded_inputs_take_the_triton_backward(self, monkeypatch):
        # Under shard_map the Triton backward runs (the Hopper one is not yet checked there).
        mesh = jax.make_mesh(
            (2, 2),
            ("data", "model"),
            axis_types=(AxisType.Explicit,) * 2,
            devices=jax.devices()[:4],
        )
        q, k, v, ql, kl, ct = make_inputs((4, 40, 40, 2, 64, True, "bfloat16"))
        qkv = NamedSharding(mesh, P("data", None, "model", None))
        args = [jax.device_put(x, qkv) for x in (q, k, v)]
        lens = [jax.device_put(x, NamedSharding(mesh, P("data"))) for x in (ql, kl)]
        calls = Calls(monkeypatch)
        with jax.set_mesh(mesh):
            got = jax.jit(
                lambda q, k, v, ql, kl: self.grads(
                    q, k, v, ct, HOPPER, query_seq_lengths=ql, key_value_seq_lengths=kl
                )
            )(*args, *lens)
        assert calls.n == 0
        want = self.grads(
            q,
            k,
            v,
            ct,
            dataclasses.replace(HOPPER, hopper_bwd=False),
            query_seq_lengths=ql,
            key_value_seq_lengths=kl,
        )
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(
                np.asarray(g, np.float32), np.asarray(w, np.float32), atol=1e-2
            )

    @pytest.mark.parametrize(
        "variant",
        [dict(overlap=False), dict(block_q=128, stages=3)],
        ids=["no_overlap", "bq128_s3"],
    )
    def test_kernel_variants(self, variant):
        # The knobs of fused_backward, called directly (the attention call uses the defaults).
        from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams

        q, k, v, _, _, ct = make_inputs((2, 256, 256, 1, 64, False, "bfloat16"))
        ql, kl = jnp.array([256, 130], jnp.int32), jnp.array([200, 256], jnp.int32)
        do = jnp.where((jnp.arange(256)[None, :] < ql[:, None])[:, :, None, None], ct, 0)
        do = do.astype(q.dtype)
        sb = -jnp.log(kl.astype(jnp.float32))
        keys = jnp.arange(256)[None, :] < kl[:, None]
        hb = jnp.where(keys, 0.5 * sb[:, None], hopper.PADDED_KEY_BIAS)
        got = hopper.fused_backward(
            q, k, v, hb, do, ql, kl, scale=0.125, interpret=InterpretGPUParams(), **variant
        )

        def ref_out(q, k, v):
            kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl, implementation="xla")
            return sigjax.sigmoid_attention(q, k, v, scale=0.125, **kw)

        _, vjp = jax.vjp(ref_out, *(x.astype(jnp.float32) for x in (q, k, v)))
        ref = vjp(do.astype(jnp.float32))
        rows = (jnp.arange(256)[None, :] < ql[:, None])[:, :, None, None]
        got = (jnp.where(rows, got[0], 0), got[1], got[2])
        for name, g, r in zip("qkv", got, ref, strict=True):
            assert rel_err(g, r) < TOL["bfloat16"], (name, rel_err(g, r))

    def test_rejects_unaligned_shapes(self):
        x = jnp.zeros((1, 96, 1, 64), jnp.bfloat16)
        with pytest.raises(ValueError, match="multiple of"):
            hopper.fused_backward(
                x,
                x,
                x,
                jnp.zeros((1, 96)),
                x,
                jnp.ones(1, jnp.int32),
                jnp.ones(1, jnp.int32),
                scale=1.0,
            )


@pytest.mark.gpu
class TestHopperCompiled(HopperSuite):
    interpret = False

    @pytest.mark.parametrize("case", COMPILED_CASES, ids=str)
    def test_gradients_match_reference(self, case, monkeypatch):
        if not _pallas._is_hopper():
            pytest.skip("not a Hopper GPU: the Triton backward runs (tested elsewhere)")
        self.check(case, monkeypatch)

    @pytest.mark.parametrize("case", COMPILED_CASES, ids=str)
    def test_forward_matches_reference(self, case, monkeypatch):
        if not _pallas._is_hopper():
            pytest.skip("not a Hopper GPU: the Triton forward runs (tested elsewhere)")
        self.check_forward(case, monkeypatch)
