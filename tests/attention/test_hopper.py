"""The Hopper kernels (pallas_kernels/sigmoid_attention/hopper.py) against the XLA reference.

In interpret mode it runs in Mosaic GPU's interpreter on CPU (slow: small shapes only); compiled
on a Hopper GPU (marked `gpu`). Also checked: when the fused Hopper backward (and the forward, off
by default) run and when the call falls back to the Triton kernels.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import core as jax_core
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
# Causal, T != S both ways: queries past the last key (T=200 > S=130), keys past the last query
# (S=256 > T=130: whole key blocks no query sees), tiles whose keys all lie after their queries.
CAUSAL_CASES = [
    (2, 200, 130, 1, 64, True, "bfloat16"),
    (1, 130, 256, 2, 128, False, "float16"),
]
COMPILED_CAUSAL_CASES = CAUSAL_CASES + [(2, 2048, 2048, 8, 128, True, "bfloat16")]
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


def record_kwarg(monkeypatch, name: str) -> list:
    """hopper.fused_backward patched to record its keyword `name` at every call (the list)."""
    seen = []
    real = hopper.fused_backward
    monkeypatch.setattr(
        hopper, "fused_backward", lambda *a, **k: seen.append(k[name]) or real(*a, **k)
    )
    return seen


def assert_grads_match(got, q, k, v, ct, tol, **kw):
    """got: gradients of <sigmoid_attention(q, k, v, **kw), ct> w.r.t. q, k, v, vs float32 XLA."""

    def ref_loss(q, k, v):
        return jnp.sum(sigjax.sigmoid_attention(q, k, v, implementation="xla", **kw) * ct)

    up = [x.astype(jnp.float32) for x in (q, k, v)]
    for g, r in zip(got, jax.grad(ref_loss, (0, 1, 2))(*up), strict=True):
        assert rel_err(g, r) < tol


def with_bias(q, k, v, bias, sigmoid_bias, **kw):
    """sigmoid_attention of (q, k, v) with a per-key bias and a per-sequence sigmoid_bias."""
    return sigjax.sigmoid_attention(q, k, v, bias, sigmoid_bias=sigmoid_bias, **kw)


def compiled_loss(**kw):
    """loss(q, k, v, q_lens, kv_lens): the summed output of sigmoid_attention(**kw) with the
    kernels compiled, not interpreted (for tracing and lowering on any machine)."""

    def loss(q, k, v, ql, kl):
        with _pallas.force_interpret(False):
            out = sigjax.sigmoid_attention(
                q, k, v, query_seq_lengths=ql, key_value_seq_lengths=kl, **kw
            )
        return jnp.sum(out.astype(jnp.float32))

    return loss


class HopperSuite:
    interpret: bool

    def grads(self, q, k, v, ct, config, *biases, **kw):
        """Gradients of <attention output, ct> w.r.t. q, k, v and the biases (if given)."""

        def loss(*args):
            with _pallas.force_interpret(self.interpret):
                fn = with_bias if biases else sigjax.sigmoid_attention
                out = fn(*args, implementation="pallas", kernel_config=config, **kw)
            return jnp.sum(out.astype(jnp.float32) * ct)

        args = (q, k, v, *biases)
        # One executable, finished before anything else runs: the Mosaic GPU interpreter's
        # threads can deadlock on a 2-core CPU when eager ops are dispatched beside them.
        return jax.block_until_ready(jax.jit(jax.grad(loss, tuple(range(len(args)))))(*args))

    def check(self, case, monkeypatch, causal=False, biased=False, config=HOPPER):
        q, k, v, ql, kl, ct = make_inputs(case)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl, is_causal=causal)
        biases = ()
        if biased:  # Gradients w.r.t. a per-key bias and the per-sequence sigmoid_bias too.
            rng = np.random.default_rng(2)
            b, s = k.shape[:2]
            biases = (
                jnp.asarray(rng.normal(size=(b, s)), jnp.float32),
                jnp.asarray(rng.normal(size=b) - 3.0, jnp.float32),
            )
        calls = Calls(monkeypatch)
        got = self.grads(q, k, v, ct, config, *biases, **kw)
        assert calls.n == 1
        up = [x.astype(jnp.float32) for x in (q, k, v)]

        def ref_loss(*args):
            fn = with_bias if biases else sigjax.sigmoid_attention
            return jnp.sum(fn(*args, implementation="xla", **kw) * ct)

        ref = jax.grad(ref_loss, tuple(range(3 + len(biases))))(*up, *biases)
        names = ["q", "k", "v", "bias", "sigmoid_bias"]
        for name, g, r, x in zip(names, got, ref, (q, k, v, *biases), strict=False):
            assert g.shape == r.shape and g.dtype == x.dtype
            assert np.all(np.isfinite(np.asarray(g, np.float32))), name
            assert rel_err(g, r) < TOL[case[-1]], (name, rel_err(g, r))
        if ql is not None:  # Padded queries and keys get exactly zero gradient.
            for bi in range(q.shape[0]):
                assert np.all(np.asarray(got[0][bi, int(ql[bi]) :]) == 0)
                for g in got[1:3] + got[3:4]:  # dk, dv (and d bias).
                    assert np.all(np.asarray(g[bi, int(kl[bi]) :]) == 0)

    def output_and_grads(self, config, ct, **kw):
        """Jitted (q, k, v) -> ((<output, ct>, output), gradients w.r.t. q, k, v) of
        sigmoid_attention with the Pallas kernels of `config`."""

        def loss(q, k, v):
            with _pallas.force_interpret(self.interpret):
                out = sigjax.sigmoid_attention(
                    q, k, v, implementation="pallas", kernel_config=config, **kw
                )
            return jnp.sum(out.astype(jnp.float32) * ct), out

        return jax.jit(jax.value_and_grad(loss, (0, 1, 2), has_aux=True))

    def check_forward(self, case, monkeypatch, causal=False, per_key_bias=False):
        q, k, v, ql, kl, ct = make_inputs(case, seed=1)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl, is_causal=causal)
        if per_key_bias:  # Concrete, so not differentiated: the Hopper backward runs too.
            bias = np.random.default_rng(4).normal(size=k.shape[:2])
            kw.update(bias=jnp.asarray(bias, jnp.float32), sigmoid_bias=-2.0)
        fwd, bwd = Calls(monkeypatch, "fused_forward"), Calls(monkeypatch)
        config = dataclasses.replace(HOPPER, hopper_fwd=True)
        value_and_grad = self.output_and_grads(config, ct, **kw)
        (_, out), grads = jax.block_until_ready(value_and_grad(q, k, v))  # See grads().
        assert fwd.n == 1 and bwd.n == 1
        up = [x.astype(jnp.float32) for x in (q, k, v)]
        ref = sigjax.sigmoid_attention(*up, implementation="xla", **kw)
        assert out.dtype == q.dtype and rel_err(out, ref) < TOL[case[-1]], rel_err(out, ref)
        if ql is not None:
            for bi in range(q.shape[0]):
                assert np.all(np.asarray(out[bi, int(ql[bi]) :]) == 0)
        assert all(np.all(np.isfinite(np.asarray(g, np.float32))) for g in grads)

    # (causal, per-key bias, shared_dq, dq_rows). Key lengths 130 and 77 end inside a forward key
    # tile (128) and inside a backward warpgroup's keys (64); batch 0's last warpgroup holds
    # padding only yet visits every query tile. Query lengths 100 and 37 end inside a query tile
    # (64).
    @pytest.mark.parametrize(
        "variant",
        [(False, False, False, False), (True, True, True, False), (True, False, True, True)],
        ids=["plain", "causal_bias_shared", "causal_dq_rows"],
    )
    def test_nan_in_padding_reaches_no_valid_output_or_gradient(self, variant, monkeypatch):
        # Masked weights are 0, but 0 * NaN is NaN: padded q, k, v (here NaN, as in a buffer with
        # missing values) must give what zeros there give. Until 2026-12-06 the Hopper kernels
        # read the padding of the tiles holding the last valid query or key.
        causal, per_key_bias, shared_dq, dq_rows = variant
        q, k, v, _, _, ct = make_inputs((2, 100, 200, 2, 64, False, "bfloat16"), seed=5)
        ql, kl = jnp.array([100, 37], jnp.int32), jnp.array([130, 77], jnp.int32)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl, is_causal=causal)
        if per_key_bias:  # Concrete: streamed with k in the forward, not differentiated.
            kw.update(bias=jnp.asarray(np.random.default_rng(6).normal(size=(2, 200)), jnp.float32))
        config = dataclasses.replace(
            HOPPER,
            hopper_fwd=True,
            hopper_shared_dq=shared_dq,
            hopper_dq_rows=dq_rows,
        )
        fwd, bwd = Calls(monkeypatch, "fused_forward"), Calls(monkeypatch)
        q_pad = np.arange(100)[None, :] >= np.asarray(ql)[:, None]
        k_pad = np.arange(200)[None, :] >= np.asarray(kl)[:, None]

        def fill(x, pad, value):
            return jnp.where(jnp.asarray(pad)[:, :, None, None], jnp.asarray(value, x.dtype), x)

        value_and_grad = self.output_and_grads(config, ct, **kw)

        def run(value):
            args = (fill(q, q_pad, value), fill(k, k_pad, value), fill(v, k_pad, value))
            return jax.block_until_ready(value_and_grad(*args))  # See grads().

        (_, out_clean), grads_clean = run(0.0)
        (_, out), grads = run(np.nan)
        assert fwd.n == 1 and bwd.n == 1  # One trace: both runs took the Hopper kernels.
        assert np.all(np.isfinite(np.asarray(out, np.float32)))
        np.testing.assert_array_equal(np.asarray(out), np.asarray(out_clean))
        for g, g_clean, pad in zip(grads, grads_clean, (q_pad, k_pad, k_pad), strict=True):
            g, g_clean = np.asarray(g, np.float32), np.asarray(g_clean, np.float32)
            assert np.all(np.isfinite(g))
            # dq's shares are reduce-added in no fixed order: equal up to rounding.
            assert rel_err(g, g_clean) < 1e-2
            assert np.all(g[pad] == 0)  # Padded tokens: exactly 0.

    @pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
    def test_dq_rows_through_the_attention_call(self, causal, monkeypatch):
        # KernelConfig.hopper_dq_rows (the table's choice at H=64): one dq share per program
        # split by query rows, 128 queries per step, so T is padded to a multiple of 128 (here
        # 70 -> 128 and 200 -> 256, the forward being the Triton one).
        seen = record_kwarg(monkeypatch, "dq_rows")
        config = dataclasses.replace(HOPPER, hopper_shared_dq=True, hopper_dq_rows=True)
        assert config.q_multiple == 128
        case = CAUSAL_CASES[0] if causal else CASES[2]  # H=64, padded.
        q, k, v, ql, kl, ct = make_inputs(case)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl, is_causal=causal)
        got = self.grads(q, k, v, ct, config, **kw)
        assert seen == [True]
        assert_grads_match(got, q, k, v, ct, TOL[case[-1]], **kw)

    def test_falls_back_where_it_does_not_apply(self, monkeypatch):
        q, k, v, ql, kl, ct = make_inputs((1, 40, 40, 1, 64, True, "bfloat16"))
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
        calls = Calls(monkeypatch)
        self.grads(*(x.astype(jnp.float32) for x in (q, k, v)), ct, HOPPER, **kw)
        self.grads(q, k, v, ct, dataclasses.replace(HOPPER, hopper_bwd=False), **kw)
        assert calls.n == 0

    def test_one_device_mesh_takes_the_hopper_backward(self, monkeypatch):
        # Single-GPU training runs on a 1x1 mesh with explicit axes: nothing is split, so the
        # Hopper backward serves it (before 2026-12-05 it went through shard_map to Triton's).
        mesh = jax.make_mesh(
            (1, 1), ("data", "fsdp"), axis_types=(AxisType.Explicit,) * 2, devices=jax.devices()[:1]
        )
        q, k, v, ql, kl, ct = make_inputs(CASES[2])
        spec = P(("data", "fsdp"), None, None, None)
        args = [jax.device_put(x, NamedSharding(mesh, spec)) for x in (q, k, v)]
        lens = [jax.device_put(x, NamedSharding(mesh, P(("data", "fsdp")))) for x in (ql, kl)]
        calls = Calls(monkeypatch)
        kw = dict(query_seq_lengths=lens[0], key_value_seq_lengths=lens[1])
        with jax.set_mesh(mesh):
            got = self.grads(*args, ct, HOPPER, **kw)
        assert calls.n == 1
        assert all(jax.typeof(g).sharding.spec == spec for g in got)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
        assert_grads_match(got, q, k, v, ct, TOL["bfloat16"], **kw)


class TestHopperInterpret(HopperSuite):
    interpret = True

    @pytest.mark.parametrize("case", CASES, ids=str)
    def test_gradients_match_reference(self, case, monkeypatch):
        self.check(case, monkeypatch)

    @pytest.mark.parametrize("case", CASES[:2], ids=str)
    def test_forward_matches_reference(self, case, monkeypatch):
        self.check_forward(case, monkeypatch)

    @pytest.mark.parametrize("case", CAUSAL_CASES, ids=str)
    def test_causal_gradients_match_reference(self, case, monkeypatch):
        self.check(case, monkeypatch, causal=True)

    @pytest.mark.parametrize("case", CAUSAL_CASES[:1], ids=str)
    def test_causal_forward_matches_reference(self, case, monkeypatch):
        self.check_forward(case, monkeypatch, causal=True)

    @pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
    def test_bias_gradients_match_reference(self, causal, monkeypatch):
        self.check(CASES[0], monkeypatch, causal=causal, biased=True)

    def test_shared_dq_through_the_attention_call(self, monkeypatch):
        # KernelConfig.hopper_shared_dq reaches fused_backward (at H=64: 64-byte swizzled tiles).
        seen = record_kwarg(monkeypatch, "shared_dq")
        config = dataclasses.replace(HOPPER, hopper_shared_dq=True)
        for case in (CASES[1], CASES[2]):  # H=128 dense float16, H=64 padded.
            q, k, v, ql, kl, ct = make_inputs(case)
            kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
            got = self.grads(q, k, v, ct, config, **kw)
            assert_grads_match(got, q, k, v, ct, TOL[case[-1]], **kw)
        assert seen == [True, True]

    @pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
    def test_forward_with_per_key_bias(self, causal, monkeypatch):
        # The per-key bias is streamed with k; without one, padded keys are masked by length.
        self.check_forward(CASES[0], monkeypatch, causal=causal, per_key_bias=True)

    def test_constant_biases_need_no_bias_gradient(self, monkeypatch):
        # A float sigmoid_bias and a concrete bias array cannot be differentiated: the backward
        # computes no bias gradient for them (here the Hopper one runs without it).
        q, k, v, ql, kl, ct = make_inputs(CASES[2])
        bias = jnp.asarray(np.random.default_rng(3).normal(size=k.shape[:2]), jnp.float32)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl, sigmoid_bias=-2.0, bias=bias)
        seen = record_kwarg(monkeypatch, "with_dbias")
        got = self.grads(q, k, v, ct, HOPPER, **kw)
        assert seen == [False]
        assert_grads_match(got, q, k, v, ct, TOL["bfloat16"], **kw)

    def test_supported_head_dims_and_dtypes(self):
        assert hopper.supported(head_dim=64, dtype=jnp.bfloat16) is None
        assert hopper.supported(head_dim=128, dtype=jnp.float16) is None
        assert "head dim" in hopper.supported(head_dim=32, dtype=jnp.bfloat16)
        assert "dtype" in hopper.supported(head_dim=64, dtype=jnp.float32)

    def test_table_configs_do_not_reach_the_interpreter(self, monkeypatch):
        q, k, v, ql, kl, ct = make_inputs((1, 40, 40, 1, 64, True, "bfloat16"))
        table = dataclasses.replace(_pallas.kernels.default_config(64, "bfloat16"), hopper_bwd=True)
        monkeypatch.setattr(_pallas.kernels, "default_config", lambda *a, **k: table)
        calls = Calls(monkeypatch)
        self.grads(q, k, v, ct, None, query_seq_lengths=ql, key_value_seq_lengths=kl)
        assert calls.n == 0

    def test_sharded_inputs_take_the_triton_kernels_in_the_interpreter(self, monkeypatch):
        # Mosaic GPU's interpreter cannot run shards side by side: the Triton interpreter serves
        # them (compiled, the Hopper kernels run per shard: the lowering test below, and
        # TestHopperCompiled.test_sharded_gradients_match_reference on 2 GPUs).
        mesh = jax.make_mesh(
            (2, 2),
            ("data", "model"),
            axis_types=(AxisType.Explicit,) * 2,
            devices=jax.devices("cpu")[:4],
        )
        q, k, v, ql, kl, ct = make_inputs((4, 40, 40, 2, 64, True, "bfloat16"))
        qkv = NamedSharding(mesh, P("data", None, "model", None))
        args = [jax.device_put(x, qkv) for x in (q, k, v)]
        lens = [jax.device_put(x, NamedSharding(mesh, P("data"))) for x in (ql, kl)]
        calls = Calls(monkeypatch)
        config = dataclasses.replace(HOPPER, hopper_fwd=True)
        with jax.set_mesh(mesh):
            got = jax.jit(
                lambda q, k, v, ql, kl: self.grads(
                    q, k, v, ct, config, query_seq_lengths=ql, key_value_seq_lengths=kl
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
        "variant,h",
        [
            (dict(overlap=False), 64),
            (dict(block_q=128, stages=3), 64),
            (dict(shared_dq=True), 128),
            (dict(shared_dq=True), 64),
            (dict(shared_dq=True, overlap=False, causal=True, with_dbias=True), 128),
            (dict(shared_dq=True, stages=3, causal=True), 128),
            (dict(shared_dq=True, dq_rows=True, block_q=128), 64),
            (dict(shared_dq=True, dq_rows=True, block_q=128, causal=True, with_dbias=True), 64),
            (dict(shared_dq=True, dq_rows=True, tanh_ds=False, causal=True, with_dbias=True), 64),
            (dict(tanh_ds=False, overlap=False, with_dbias=True), 128),
            (dict(shared_dq=True, dq_rows=True, kv_lens=(100, 256)), 64),
            (dict(shared_dq=True, with_dbias=True, kv_lens=(256, 60)), 128),
        ],
        ids=[
            "no_overlap",
            "bq128_s3",
            "shared_dq",
            "shared_dq_h64",
            "shared_dq_causal_dbias",
            "shared_dq_s3_causal",
            "dq_rows_h64",
            "dq_rows_causal_dbias",
            "ds_from_p_dq_rows_causal_dbias",
            "ds_from_p_no_overlap_dbias",
            "padding_keys_program_dq_rows",
            "padding_keys_program_shared_dq_dbias",
        ],
    )
    def test_kernel_variants(self, variant, h):
        # The knobs of fused_backward, called directly (the attention call uses the defaults).
        from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams

        variant = dict(variant)  # kv_lens (100 or 60: a program of padding keys only).
        kl = jnp.array(variant.pop("kv_lens", (200, 256)), jnp.int32)
        q, k, v, _, _, ct = make_inputs((2, 256, 256, 1, h, False, "bfloat16"))
        ql = jnp.array([256, 130], jnp.int32)
        do = jnp.where((jnp.arange(256)[None, :] < ql[:, None])[:, :, None, None], ct, 0)
        do = do.astype(q.dtype)
        sb = -jnp.log(kl.astype(jnp.float32))
        keys = jnp.arange(256)[None, :] < kl[:, None]
        hb = jnp.where(keys, 0.5 * sb[:, None], hopper.PADDED_KEY_BIAS)
        got = hopper.fused_backward(
            q, k, v, hb, do, ql, kl, scale=0.125, interpret=InterpretGPUParams(), **variant
        )
        jax.block_until_ready(got)  # See HopperSuite.grads.

        def ref_out(q, k, v, bias):
            kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl, implementation="xla")
            causal = variant.get("causal", False)
            return sigjax.sigmoid_attention(q, k, v, bias, scale=0.125, is_causal=causal, **kw)

        up = [x.astype(jnp.float32) for x in (q, k, v)]
        _, vjp = jax.vjp(ref_out, *up, jnp.zeros((2, 256), jnp.float32))
        ref = vjp(do.astype(jnp.float32))
        rows = (jnp.arange(256)[None, :] < ql[:, None])[:, :, None, None]
        got = (jnp.where(rows, got[0], 0), *got[1:3], *(jnp.sum(g, axis=1) for g in got[3:]))
        assert len(got) == (4 if variant.get("with_dbias") else 3)
        for name, g, r in zip(["q", "k", "v", "bias"], got, ref, strict=False):
            assert rel_err(g, r) < TOL["bfloat16"], (name, rel_err(g, r))
        for g in got[1:3]:  # dk and dv of padded keys are exactly 0.
            assert not np.any(np.asarray(jnp.where(keys[:, :, None, None], 0, g), np.float32))

    @pytest.mark.parametrize(
        "variant",
        [dict(pingpong=False), dict(stages=3, causal=True), dict(block_k=64, per_key_bias=True)],
        ids=["no_pingpong", "s3_causal", "bk64_per_key"],
    )
    def test_forward_kernel_variants(self, variant):
        # The knobs of fused_forward, called directly (the attention call uses the defaults).
        from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams

        variant = dict(variant)
        per_key = variant.pop("per_key_bias", False)
        q, k, v, _, _, _ = make_inputs((2, 256, 384, 1, 64, False, "bfloat16"))
        ql, kl = jnp.array([256, 130], jnp.int32), jnp.array([200, 384], jnp.int32)
        sb = -jnp.log(kl.astype(jnp.float32))
        hb = 0.5 * sb
        if per_key:
            keys = jnp.arange(384)[None, :] < kl[:, None]
            hb = jnp.where(keys, hb[:, None], hopper.PADDED_KEY_BIAS)
        got = hopper.fused_forward(
            q, k, v, hb, ql, kl, scale=0.125, interpret=InterpretGPUParams(), **variant
        )
        got = jax.block_until_ready(got)  # See HopperSuite.grads.
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl, implementation="xla")
        up = (x.astype(jnp.float32) for x in (q, k, v))
        ref = sigjax.sigmoid_attention(*up, scale=0.125, is_causal=variant.get("causal"), **kw)
        rows = (jnp.arange(256)[None, :] < ql[:, None])[:, :, None, None]
        assert rel_err(got, ref) < TOL["bfloat16"]
        # The kernel zeroes rows of padded queries itself (130..255 of the second sequence: in
        # the tile of queries 128..255, whose first two rows are valid).
        assert not np.any(np.asarray(jnp.where(rows, 0, got), np.float32))

    @pytest.mark.parametrize(
        "kernel,variant,h",
        [
            (kernel, variant, h)
            for h in (64, 128)
            for kernel, variant in [
                ("fused_backward", {}),
                ("fused_backward", dict(causal=True)),
                ("fused_backward", dict(with_dbias=True)),
                ("fused_backward", dict(causal=True, with_dbias=True, overlap=False)),
                ("fused_forward", {}),
                ("fused_forward", dict(causal=True)),
                ("fused_forward", dict(pingpong=False)),
                ("fused_forward", dict(per_key_bias=True)),
                ("fused_forward", dict(causal=True, per_key_bias=True, stages=3)),
            ]
        ]
        + [("fused_backward", dict(causal=True, block_q=128, stages=3), 64)]
        + [
            ("fused_backward", dict(shared_dq=True, **kw), h)
            for kw in ({}, dict(stages=3), dict(causal=True, with_dbias=True, overlap=False))
            for h in (64, 128)
        ]
        + [("fused_backward", dict(swizzle=64), 64)]
        + [
            ("fused_backward", dict(shared_dq=True, dq_rows=True, block_q=128, **kw), 64)
            for kw in (
                {},
                dict(stages=3),
                dict(causal=True, with_dbias=True, overlap=False),
                dict(tanh_ds=False),
                dict(tanh_ds=False, causal=True, with_dbias=True),
            )
        ],
        ids=str,
    )
    def test_compiled_kernels_lower_for_cuda(self, kernel, variant, h):
        # No GPU needed: Mosaic GPU's lowering of the compiled (not interpreted) kernel to its MLIR
        # custom call runs here, and refuses what it does not support (ops, layouts) as on a GPU.
        # What it does not check: PTX compilation and the run itself (the `gpu` tests).
        b, t, n = 2, 512, 2
        variant = dict(variant)
        per_key = variant.pop("per_key_bias", kernel == "fused_backward")
        x = jax.ShapeDtypeStruct((b, t, n, h), jnp.bfloat16)
        bias = jax.ShapeDtypeStruct((b, t) if per_key else (b,), jnp.float32)
        lens = jax.ShapeDtypeStruct((b,), jnp.int32)
        args = (x, x, x, bias, x, lens, lens) if kernel == "fused_backward" else (x, x, x, bias)
        args += () if kernel == "fused_backward" else (lens, lens)
        fn = getattr(hopper, kernel)
        traced = jax.jit(lambda *a: fn(*a, scale=0.125, **variant)).trace(*args)
        text = traced.lower(lowering_platforms=("cuda",)).as_text()
        assert "mosaic_gpu" in text and "wgmma" in text

    @pytest.mark.parametrize(
        "spec,local",
        [
            (P("data", None, "model", None), (2, 512, 2, 64)),
            (P(None, None, ("data", "model"), None), (4, 512, 1, 64)),
        ],
        ids=["batch_and_heads", "heads"],
    )
    def test_sharded_inputs_lower_to_the_hopper_kernels_per_shard(self, spec, local, monkeypatch):
        # On a 2x2 mesh of GPUs each device runs the Hopper forward and backward on its own
        # slice (batch and/or heads split) inside the shard_map: the compiled lowering for CUDA
        # shows both kernels with the per-shard shapes (the interpreter cannot run shards).
        monkeypatch.setattr(_pallas, "_is_hopper", lambda: True)
        mesh = jax.make_mesh(
            (2, 2),
            ("data", "model"),
            axis_types=(AxisType.Explicit,) * 2,
            devices=jax.devices("cpu")[:4],
        )
        x = jax.ShapeDtypeStruct((4, 512, 4, 64), jnp.bfloat16, sharding=NamedSharding(mesh, spec))
        lens = jax.ShapeDtypeStruct((4,), jnp.int32, sharding=NamedSharding(mesh, P(spec[0])))
        config = dataclasses.replace(HOPPER, hopper_fwd=True, hopper_shared_dq=True)
        fwd, bwd = Calls(monkeypatch, "fused_forward"), Calls(monkeypatch)
        loss = compiled_loss(implementation="pallas", kernel_config=config)
        with jax.set_mesh(mesh):
            traced = jax.jit(jax.value_and_grad(loss, (0, 1, 2))).trace(x, x, x, lens, lens)
            text = traced.lower(lowering_platforms=("cuda",)).as_text()
        assert fwd.n == 1 and bwd.n == 1
        assert "sdy.manual_computation" in text
        kernels = [line for line in text.splitlines() if "custom_call @mosaic_gpu_v2" in line]
        assert len(kernels) == 2  # The forward, and the backward (dk, dv and the dq buffer).
        shape = "x".join(map(str, local))
        assert all(f"tensor<{shape}xbf16>" in line for line in kernels), shape

    @pytest.mark.parametrize("implementation", ["hopper", "triton", "xla"])
    def test_no_buffer_grows_with_t_times_s(self, implementation, monkeypatch):
        # Memory linear in T: no array of the compiled fwd+bwd program (kernel bodies included)
        # has more elements than q; the XLA path's T x S scores show that the check sees one.
        monkeypatch.setattr(_pallas, "_is_hopper", lambda: True)
        b, t, n, h = 1, 2048, 2, 64
        if implementation == "xla":
            loss = compiled_loss(implementation="xla")
        else:
            hop = implementation == "hopper"
            config = KernelConfig(hopper_bwd=hop, hopper_fwd=hop)
            loss = compiled_loss(implementation="pallas", kernel_config=config)
        x = jax.ShapeDtypeStruct((b, t, n, h), jnp.bfloat16)
        lens = jax.ShapeDtypeStruct((b,), jnp.int32)
        closed = jax.make_jaxpr(jax.value_and_grad(loss, (0, 1, 2)))(x, x, x, lens, lens)
        sizes, kernels = [], []

        def walk(jaxpr):
            for eqn in jaxpr.eqns:
                kernels.append(eqn.params.get("name_and_src_info") or eqn.params.get("name"))
                sizes.extend(math.prod(getattr(v.aval, "shape", ())) for v in eqn.outvars)
                for sub in jax_core.jaxprs_in_params(eqn.params):
                    walk(sub)

        walk(closed.jaxpr)
        if implementation == "xla":
            assert max(sizes) >= b * n * t * t
        else:
            assert max(sizes) <= b * t * n * h
            ran = " ".join(map(str, kernels))
            assert ("_hopper" in ran) == (implementation == "hopper"), ran[:300]
            assert "sigmoid_attention_" in ran

    @pytest.mark.parametrize("split", ["FORWARD_REGISTERS", "BACKWARD_REGISTERS"])
    def test_register_split_fits_an_sm(self, split):
        # setmaxnreg takes multiples of 8 in [24, 256], and the warpgroups' registers together
        # must fit the SM's 64K, or the launch fails on the GPU only.
        up, down = getattr(hopper, split)
        assert all(r % 8 == 0 and 24 <= r <= 256 for r in (up, down)), (up, down)
        assert 128 * (hopper.COMPUTE_WGS * up + down) <= 65536

    def test_lowering_checks_shared_memory(self):
        # block_q=128 does not fit an H=128 backward's tiles in shared memory: refused here too.
        x = jax.ShapeDtypeStruct((1, 256, 1, 128), jnp.bfloat16)
        lens = jax.ShapeDtypeStruct((1,), jnp.int32)
        args = (x, x, x, jax.ShapeDtypeStruct((1, 256), jnp.float32), x, lens, lens)
        fn = jax.jit(lambda *a: hopper.fused_backward(*a, scale=0.1, block_q=128))
        with pytest.raises(Exception, match="exceeds available shared memory"):
            fn.trace(*args).lower(lowering_platforms=("cuda",))

    @pytest.mark.parametrize(
        "t,kw,match",
        [
            (96, {}, "multiple of"),
            (128, dict(shared_dq=True, swizzle=128), "128-byte tiles"),
            (128, dict(dq_rows=True, block_q=128), "dq_rows needs shared_dq"),
            (128, dict(shared_dq=True, dq_rows=True, block_q=64), "and block_q=128"),
        ],
        ids=["unaligned", "dq_half_within_a_swizzle_tile", "dq_rows_alone", "dq_rows_block_q"],
    )
    def test_rejects_unaligned_shapes(self, t, kw, match):
        x = jnp.zeros((1, t, 1, 64), jnp.bfloat16)
        lens = jnp.ones(1, jnp.int32)
        with pytest.raises(ValueError, match=match):
            hopper.fused_backward(x, x, x, jnp.zeros((1, t)), x, lens, lens, scale=1.0, **kw)


@pytest.mark.gpu
class TestHopperCompiled(HopperSuite):
    interpret = False

    @pytest.fixture(autouse=True)
    def _hopper_gpu(self):
        if not _pallas._is_hopper():
            pytest.skip("not a Hopper GPU: the Triton kernels run (tested elsewhere)")

    @pytest.mark.parametrize("case", COMPILED_CASES, ids=str)
    def test_gradients_match_reference(self, case, monkeypatch):
        self.check(case, monkeypatch)

    @pytest.mark.parametrize("case", COMPILED_CASES, ids=str)
    def test_forward_matches_reference(self, case, monkeypatch):
        self.check_forward(case, monkeypatch)

    @pytest.mark.parametrize("case", COMPILED_CAUSAL_CASES, ids=str)
    def test_causal_gradients_match_reference(self, case, monkeypatch):
        self.check(case, monkeypatch, causal=True)

    @pytest.mark.parametrize("case", COMPILED_CAUSAL_CASES, ids=str)
    def test_causal_forward_matches_reference(self, case, monkeypatch):
        self.check_forward(case, monkeypatch, causal=True)

    @pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
    def test_forward_with_per_key_bias(self, causal, monkeypatch):
        self.check_forward(COMPILED_CASES[3], monkeypatch, causal=causal, per_key_bias=True)

    @pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
    @pytest.mark.parametrize("case", [CASES[0], COMPILED_CASES[3]], ids=str)
    def test_bias_gradients_match_reference(self, case, causal, monkeypatch):
        self.check(case, monkeypatch, causal=causal, biased=True)

    @pytest.mark.parametrize("case", COMPILED_CASES, ids=str)
    def test_shared_dq_gradients_match_reference(self, case, monkeypatch):
        config = dataclasses.replace(HOPPER, hopper_shared_dq=True)
        self.check(case, monkeypatch, config=config)

    @pytest.mark.parametrize(
        "spec", [P("gpus", None, None, None), P(None, None, "gpus", None)], ids=["batch", "heads"]
    )
    def test_sharded_gradients_match_reference(self, spec, monkeypatch):
        # Each GPU runs the Hopper kernels on its shard under jax.shard_map.
        gpus = jax.devices()
        if len(gpus) < 2:
            pytest.skip(f"needs 2 GPUs (a shard per device), found {len(gpus)}")
        mesh = jax.make_mesh((2,), ("gpus",), axis_types=(AxisType.Explicit,), devices=gpus[:2])
        q, k, v, ql, kl, ct = make_inputs((4, 1000, 1000, 4, 64, True, "bfloat16"))
        args = [jax.device_put(x, NamedSharding(mesh, spec)) for x in (q, k, v)]
        lens = [jax.device_put(x, NamedSharding(mesh, P(spec[0]))) for x in (ql, kl)]
        fwd, bwd = Calls(monkeypatch, "fused_forward"), Calls(monkeypatch)
        config = dataclasses.replace(HOPPER, hopper_fwd=True, hopper_shared_dq=True)
        kw = dict(query_seq_lengths=lens[0], key_value_seq_lengths=lens[1])
        with jax.set_mesh(mesh):
            got = self.grads(*args, ct, config, **kw)
        assert fwd.n == 1 and bwd.n == 1
        assert all(jax.typeof(g).sharding.spec == spec for g in got)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
        assert_grads_match(got, q, k, v, ct, TOL["bfloat16"], **kw)
