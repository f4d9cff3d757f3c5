"""The kernel test suite: Pallas kernels against the XLA reference (values and gradients).

`KernelSuite` runs in Pallas interpret mode on CPU (`TestKernelsInterpret`) and compiled on a GPU
(`TestKernelsCompiled`, marked `gpu`). Besides the edge cases below (odd lengths, mixed tiles),
each suite checks the benchmark's own argument specs (`eval.kernels.specs`): the `--quick` shapes
in interpret mode, the sweep's shapes up to T=4096 compiled, with the benchmark's check.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sigjax
from eval.kernels import measure as bench
from eval.kernels import specs
from pallas_kernels.sigmoid_attention import KernelConfig, backward
from sigjax.attention import _pallas

SMALL = KernelConfig(
    block_q=16,
    block_k=16,
    num_warps=4,
    num_stages=1,
    block_q_dq=16,
    block_k_dq=16,
    block_q_dkv=16,
    block_k_dkv=16,
    num_warps_bwd=4,
    num_stages_bwd=1,
)
MIXED = KernelConfig(
    block_q=32,
    block_k=16,
    num_warps=4,
    num_stages=2,
    block_q_dq=16,
    block_k_dq=32,
    block_q_dkv=32,
    block_k_dkv=16,
    num_warps_bwd=4,
    num_stages_bwd=1,
)
# One backward kernel adding dQ atomically (tile shapes differ between dQ and dK/dV on purpose).
FUSED = dataclasses.replace(MIXED, fused_bwd=True)

# (B, T, S, N, H, causal, padded, key bias, dtype, block sizes); odd T and S on purpose.
CASES = [
    (2, 37, 45, 2, 24, False, True, False, "float32", SMALL),
    (2, 37, 45, 2, 24, True, True, True, "float32", SMALL),
    (1, 64, 64, 2, 64, False, False, False, "float32", None),
    (2, 50, 50, 1, 32, True, False, False, "float32", MIXED),
    (3, 20, 70, 2, 16, False, True, True, "bfloat16", MIXED),
    (2, 33, 33, 2, 64, True, True, False, "bfloat16", SMALL),
    (1, 48, 40, 1, 128, False, True, True, "float16", None),
    (1, 40, 24, 2, 80, False, True, False, "float32", SMALL),
    (2, 37, 45, 2, 24, True, True, True, "float32", FUSED),
    (3, 20, 70, 2, 16, False, True, False, "bfloat16", FUSED),
    # Many query blocks per key block, each key block adding dQ into every one of them.
    (2, 150, 120, 1, 16, False, True, False, "float32", FUSED),
    (2, 150, 150, 1, 16, True, True, True, "float32", FUSED),
]
GRAD_CASES = [c for i, c in enumerate(CASES) if i in (0, 1, 3, 4, 6, 8, 9, 10, 11)]
TOL = {"float32": 2e-5, "bfloat16": 2e-2, "float16": 4e-3}
COMPILED_TOL = {"float32": 5e-3, "bfloat16": 3e-2, "float16": 1e-2}  # tanh.approx sigmoid.


# The benchmark's shapes: what `python -m eval kernels --quick` times, and the GPU sweep's shorter
# lengths (plus T=1000, not a multiple of any tile) with padding, both masks and the backward.
INTERPRET_SPECS = specs.arg_specs(specs.QUICK_SPECS)
COMPILED_SPECS = specs.arg_specs(
    specs.FULL_SPECS, seq_lens=(1000, 4096), paddings=(0.25,), modes=("fwdbwd",)
)


def spec_id(shape):
    return (
        f"H{shape.head_dim}T{shape.seq_len}B{shape.batch}-pad{shape.padding}"
        f"-{'causal' if shape.causal else 'full'}-{shape.mode}-{shape.dtype}"
    )


def case_id(case):
    b, t, s, n, h, causal, padded, bias, dtype, bs = case
    return (
        f"B{b}T{t}S{s}N{n}H{h}-{'causal' if causal else 'full'}-{'pad' if padded else 'dense'}"
        f"-{'bias' if bias else 'nobias'}-{dtype}-{'default' if bs is None else bs.block_q}"
        f"{'-fused' if bs is not None and bs.fused_bwd else ''}"
    )


def make_inputs(case, seed=0):
    b, t, s, n, h, causal, padded, bias, dtype, _ = case
    rng = np.random.default_rng(seed)
    dt = jnp.dtype(dtype)
    q = jnp.asarray(rng.normal(size=(b, t, n, h)), dt)
    k = jnp.asarray(rng.normal(size=(b, s, n, h)), dt)
    v = jnp.asarray(rng.normal(size=(b, s, n, h)), dt)
    kb = jnp.asarray(rng.normal(size=(b, s)), jnp.float32) if bias else None
    if padded:
        q_lens = rng.integers(1, t + 1, size=b)
        kv_lens = rng.integers(1, s + 1, size=b)
        q_lens[0], kv_lens[-1] = t, max(1, s // 3)  # One full query set, one short key set.
        q_lens, kv_lens = jnp.asarray(q_lens, jnp.int32), jnp.asarray(kv_lens, jnp.int32)
    else:
        q_lens = kv_lens = None
    return q, k, v, kb, q_lens, kv_lens


def rel_err(x, ref):
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-6))


def up(x):
    return None if x is None else x.astype(jnp.float32)


class KernelSuite:
    """Shared checks; subclasses set `interpret` and `tol`."""

    interpret: bool
    tol: dict

    def pallas(self, *args, kernel_config=None, **kwargs):
        with _pallas.force_interpret(self.interpret):
            return sigjax.sigmoid_attention(
                *args, implementation="pallas", kernel_config=kernel_config, **kwargs
            )

    def check_spec(self, shape):
        """The benchmark's check of one of its shapes: output and q, k, v gradients vs float32."""
        args = specs.make_inputs(shape)
        with _pallas.force_interpret(self.interpret):
            compiled, _, _ = bench.compile_program("pallas", shape, args)
        rec = bench.check_outputs("pallas", shape, args, compiled(*args), tol=self.tol[shape.dtype])
        assert rec["max_rel_err"]["out"] < self.tol[shape.dtype], rec["max_rel_err"]
        for name in ("dq", "dk", "dv") if shape.mode == "fwdbwd" else ():
            assert rec["max_rel_err"][name] < 2 * self.tol[shape.dtype], rec["max_rel_err"]

    @pytest.mark.parametrize("case", CASES, ids=case_id)
    def test_forward_matches_reference(self, case):
        q, k, v, kb, ql, kl = make_inputs(case)
        causal, dtype, bs = case[5], case[8], case[9]
        kw = dict(is_causal=causal, query_seq_lengths=ql, key_value_seq_lengths=kl)
        out = self.pallas(q, k, v, kb, kernel_config=bs, **kw)
        ref = sigjax.sigmoid_attention(up(q), up(k), up(v), kb, implementation="xla", **kw)
        chex.assert_shape(out, q.shape)
        assert out.dtype == q.dtype
        assert np.all(np.isfinite(np.asarray(out, np.float32)))
        assert rel_err(out, ref) < self.tol[dtype], rel_err(out, ref)

    @pytest.mark.parametrize("case", GRAD_CASES, ids=case_id)
    def test_gradients_match_reference(self, case):
        q, k, v, kb, ql, kl = make_inputs(case, seed=1)
        causal, dtype, bs = case[5], case[8], case[9]
        kw = dict(is_causal=causal, query_seq_lengths=ql, key_value_seq_lengths=kl)
        ct = jnp.asarray(np.random.default_rng(2).normal(size=q.shape), jnp.float32)
        argnums = (0, 1, 2, 3) if kb is not None else (0, 1, 2)

        def loss(fn):
            return lambda q, k, v, kb: jnp.sum(fn(q, k, v, kb).astype(jnp.float32) * ct)

        grads = jax.grad(loss(lambda *a: self.pallas(*a, kernel_config=bs, **kw)), argnums)(
            q, k, v, kb
        )
        ref = jax.grad(
            loss(lambda *a: sigjax.sigmoid_attention(*a, implementation="xla", **kw)), argnums
        )(up(q), up(k), up(v), kb)
        for name, g, r in zip("qkvb"[: len(grads)], grads, ref, strict=True):
            assert g.shape == r.shape
            assert rel_err(g, r) < 2 * self.tol[dtype], (name, rel_err(g, r))

    @pytest.mark.parametrize("bs", [SMALL, FUSED], ids=["split_bwd", "fused_bwd"])
    def test_padding_gets_exactly_zero_gradient(self, bs):
        case = (2, 37, 45, 2, 24, True, True, True, "float32", bs)
        q, k, v, kb, ql, kl = make_inputs(case, seed=3)
        ct = jnp.ones(q.shape, jnp.float32)  # Non-zero cotangent on padded rows too.
        kw = dict(is_causal=True, query_seq_lengths=ql, key_value_seq_lengths=kl, kernel_config=bs)
        dq, dk, dv, db = jax.grad(lambda *a: jnp.sum(self.pallas(*a, **kw) * ct), (0, 1, 2, 3))(
            q, k, v, kb
        )
        for bi in range(2):
            assert np.all(np.asarray(dq[bi, int(ql[bi]) :]) == 0)
            assert np.all(np.asarray(dk[bi, int(kl[bi]) :]) == 0)
            assert np.all(np.asarray(dv[bi, int(kl[bi]) :]) == 0)
            assert np.all(np.asarray(db[bi, int(kl[bi]) :]) == 0)
            assert np.any(np.asarray(dq[bi, : int(ql[bi])]) != 0)

    @pytest.mark.parametrize("bs", [SMALL, FUSED], ids=["split_bwd", "fused_bwd"])
    def test_nan_in_padding_reaches_no_valid_output_or_gradient(self, bs):
        # Masked weights are 0, but 0 * NaN is NaN: padded q, k, v (here NaN, as in a buffer with
        # missing values) must give what zeros there give, and padded tokens zero gradient.
        case = (2, 37, 45, 2, 24, True, True, True, "float32", bs)
        q, k, v, kb, ql, kl = make_inputs(case, seed=6)
        ql, kl = jnp.array([37, 21], jnp.int32), jnp.array([29, 45], jnp.int32)
        kw = dict(is_causal=True, query_seq_lengths=ql, key_value_seq_lengths=kl, kernel_config=bs)
        q_pad = np.arange(37)[None, :] >= np.asarray(ql)[:, None]
        k_pad = np.arange(45)[None, :] >= np.asarray(kl)[:, None]

        def fill(x, pad, value):
            return jnp.where(jnp.asarray(pad)[:, :, None, None], value, x)

        ct = jnp.asarray(np.random.default_rng(7).normal(size=q.shape), jnp.float32)

        def run(q, k, v):
            def loss(*args):
                out = self.pallas(*args, **kw)
                return jnp.sum(out * ct), out

            (_, out), grads = jax.value_and_grad(loss, (0, 1, 2, 3), has_aux=True)(q, k, v, kb)
            return out, grads

        out_clean, grads_clean = run(fill(q, q_pad, 0.0), fill(k, k_pad, 0.0), fill(v, k_pad, 0.0))
        out, grads = run(fill(q, q_pad, jnp.nan), fill(k, k_pad, jnp.nan), fill(v, k_pad, jnp.nan))
        assert np.all(np.isfinite(np.asarray(out)))
        np.testing.assert_allclose(np.asarray(out), np.asarray(out_clean), atol=1e-6)
        for g, g_clean in zip(grads, grads_clean, strict=True):
            assert np.all(np.isfinite(np.asarray(g)))
            np.testing.assert_allclose(np.asarray(g), np.asarray(g_clean), atol=1e-5)
        dq, dk, dv, _ = grads
        assert np.all(np.asarray(dq)[q_pad] == 0)
        assert np.all(np.asarray(dk)[k_pad] == 0) and np.all(np.asarray(dv)[k_pad] == 0)

    def test_zero_valid_keys_and_queries_give_zeros(self):
        case = (2, 20, 30, 1, 16, False, False, False, "float32", SMALL)
        q, k, v, _, _, _ = make_inputs(case)
        ql, kl = jnp.array([20, 0], jnp.int32), jnp.array([0, 30], jnp.int32)
        out, grads = jax.value_and_grad(
            lambda q, k, v: jnp.sum(
                self.pallas(
                    q, k, v, query_seq_lengths=ql, key_value_seq_lengths=kl, kernel_config=SMALL
                )
            ),
            (0, 1, 2),
        )(q, k, v)
        full = self.pallas(
            q, k, v, query_seq_lengths=ql, key_value_seq_lengths=kl, kernel_config=SMALL
        )
        assert np.all(np.asarray(full) == 0)
        assert float(out) == 0.0
        for g in grads:
            assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g) == 0)

    def test_sigmoid_bias_float_and_array_with_gradient(self):
        case = (2, 24, 40, 2, 16, False, True, False, "float32", SMALL)
        q, k, v, _, ql, kl = make_inputs(case, seed=4)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
        for sb in (-2.5, jnp.array([-1.0, -3.0], jnp.float32)):
            out = self.pallas(q, k, v, sigmoid_bias=sb, kernel_config=SMALL, **kw)
            ref = sigjax.sigmoid_attention(q, k, v, sigmoid_bias=sb, implementation="xla", **kw)
            assert rel_err(out, ref) < self.tol["float32"]
        sb = jnp.array([-1.0, -3.0], jnp.float32)
        g = jax.grad(
            lambda s: jnp.sum(self.pallas(q, k, v, sigmoid_bias=s, kernel_config=SMALL, **kw))
        )(sb)
        r = jax.grad(
            lambda s: jnp.sum(
                sigjax.sigmoid_attention(q, k, v, sigmoid_bias=s, implementation="xla", **kw)
            )
        )(sb)
        assert rel_err(g, r) < 2 * self.tol["float32"]

    def test_jit_and_vmap(self):
        case = (2, 24, 24, 2, 16, True, True, False, "float32", SMALL)
        q, k, v, _, ql, kl = make_inputs(case, seed=5)
        qs, ks, vs = (jnp.stack([x, x[::-1]]) for x in (q, k, v))
        qls, kls = jnp.stack([ql, ql[::-1]]), jnp.stack([kl, kl[::-1]])

        def f(q, k, v, ql, kl):
            return self.pallas(
                q,
                k,
                v,
                is_causal=True,
                query_seq_lengths=ql,
                key_value_seq_lengths=kl,
                kernel_config=SMALL,
            )

        out = jax.jit(jax.vmap(f))(qs, ks, vs, qls, kls)
        for i in range(2):
            ref = sigjax.sigmoid_attention(
                qs[i],
                ks[i],
                vs[i],
                is_causal=True,
                query_seq_lengths=qls[i],
                key_value_seq_lengths=kls[i],
                implementation="xla",
            )
            assert rel_err(out[i], ref) < self.tol["float32"]


class TestKernelsInterpret(KernelSuite):
    interpret = True
    tol = TOL

    @pytest.mark.parametrize("shape", INTERPRET_SPECS, ids=spec_id)
    def test_benchmark_specs(self, shape):
        self.check_spec(shape)

    # Causal with a key bias (its gradient), bfloat16, the fused backward (causal, bfloat16).
    @pytest.mark.parametrize("case", [GRAD_CASES[i] for i in (1, 3, 5, 6)], ids=case_id)
    def test_gradients_with_ds_from_tanh(self, case, monkeypatch):
        # Compiled, the Triton backward takes ds from w = tanh(logit / 2) (tanh_ds, with the
        # tanh.approx sigmoid, which the interpreter lacks): here with jnp.tanh, the same
        # arithmetic (w = -1 where masked, the 1/4 on dq, dk and the bias gradient).
        monkeypatch.setattr(backward, "_tanh_ds", lambda tanh_ds, approx: True)
        self.test_gradients_match_reference(case)

    @pytest.mark.parametrize(
        "h,causal,padded", [(64, False, True), (128, True, False), (48, True, True)]
    )
    def test_compiled_kernels_lower_for_cuda(self, h, causal, padded):
        # The GPU path's forward and backward lowered for CUDA (to Triton custom calls) on the CPU:
        # Pallas-Triton's lowering refuses what it does not support, as on a GPU. (JAX >= 0.11
        # lowers Triton kernels only with a GPU present; CI runs 0.10.)
        if jax.__version_info__ >= (0, 11) and jax.default_backend() != "gpu":
            pytest.skip("jax >= 0.11 lowers Pallas-Triton kernels only with a GPU present")
        x = jax.ShapeDtypeStruct((2, 1000, 4, h), jnp.bfloat16)
        lens = jax.ShapeDtypeStruct((2,), jnp.int32)

        def loss(q, k, v, lens):
            kw = dict(query_seq_lengths=lens, key_value_seq_lengths=lens) if padded else {}
            with _pallas.force_interpret(False):
                out = sigjax.sigmoid_attention(
                    q, k, v, implementation="pallas", is_causal=causal, **kw
                )
            return jnp.sum(out.astype(jnp.float32))

        traced = jax.jit(jax.value_and_grad(loss, (0, 1, 2))).trace(x, x, x, lens)
        text = traced.lower(lowering_platforms=("cuda",)).as_text()
        # Forward, dK/dV and dQ kernels (the CPU has no Hopper GPU: no Mosaic GPU kernel).
        assert text.count("__gpu$xla.gpu.triton") == 3 and "mosaic_gpu" not in text


@pytest.mark.gpu
class TestKernelsCompiled(KernelSuite):
    interpret = False
    tol = COMPILED_TOL

    def test_exact_sigmoid_switch(self):
        case = (2, 300, 257, 2, 64, False, True, False, "float32", None)
        q, k, v, _, ql, kl = make_inputs(case)
        kw = dict(query_seq_lengths=ql, key_value_seq_lengths=kl)
        out = self.pallas(q, k, v, exact_sigmoid=True, **kw)
        ref = sigjax.sigmoid_attention(q, k, v, implementation="xla", **kw)
        assert rel_err(out, ref) < 1e-4

    @pytest.mark.parametrize("shape", COMPILED_SPECS, ids=spec_id)
    def test_benchmark_specs(self, shape):
        self.check_spec(shape)
