"""Does `hopper.fused_backward` (or `fused_forward`) trace to the same kernel as at another commit?

Runs on CPU, no GPU needed: traces the compiled-mode (not interpreted) function of the working tree
and of `pallas_kernels/sigmoid_attention/hopper.py` as of COMMIT, at H=64 and 128, and compares the
two jaxprs structurally (primitives, parameters, shapes and dataflow, kernel body included; variable
names and source paths left out). Equal jaxprs lower to the same kernel, so GPU measurements of
COMMIT stand for the working tree. Run from the repository root:
    python docs/probes/same_kernel.py f45fe25 [fused_backward|fused_forward]
"""

import importlib.util
import pathlib
import re
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from pallas_kernels.sigmoid_attention import hopper

_UNSTABLE = ("name", "name_and_src_info", "debug_info", "metadata")


def _module_at(commit: str):
    path = "pallas_kernels/sigmoid_attention/hopper.py"
    text = subprocess.run(
        ["git", "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    file = pathlib.Path(tempfile.mkdtemp()) / "hopper_at_commit.py"
    file.write_text(text)
    spec = importlib.util.spec_from_file_location("hopper_at_commit", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flatten(jaxpr, out: list, names: dict) -> None:
    """The jaxpr as a list of strings: inputs, then one entry per equation, sub-jaxprs inline."""

    def name(v):
        if isinstance(v, jcore.Literal):
            return f"literal {v.val}"
        return names.setdefault(v, f"v{len(names)}")

    out += [f"in {name(v)} {v.aval}" for v in (*jaxpr.constvars, *jaxpr.invars)]
    for eqn in jaxpr.eqns:
        params, subs = [], []
        for key, value in sorted(eqn.params.items()):
            items = value if isinstance(value, tuple | list) else [value]
            inner = [x.jaxpr if isinstance(x, jcore.ClosedJaxpr) else x for x in items]
            inner = [x for x in inner if isinstance(x, jcore.Jaxpr)]
            subs += inner
            if not inner and key not in _UNSTABLE:
                params.append(f"{key}={value}")
        ins = [name(v) for v in eqn.invars]
        outs = [f"{name(v)}:{v.aval}" for v in eqn.outvars]
        out.append(f"{eqn.primitive} {ins} -> {outs} {params}")
        for sub in subs:
            _flatten(sub, out, names)
    out.append(f"out {[name(v) for v in jaxpr.outvars]}")


def structure(module, fn_name: str, h: int) -> list[str]:
    b, t, n = 2, 512, 2
    q = jax.ShapeDtypeStruct((b, t, n, h), jnp.bfloat16)
    bias = jax.ShapeDtypeStruct((b, t), jnp.float32)
    lens = jax.ShapeDtypeStruct((b,), jnp.int32)
    fn = getattr(module, fn_name)
    args = (
        (q, q, q, bias, q, lens, lens)
        if fn_name == "fused_backward"
        else (q, q, q, bias, lens, lens)
    )
    closed = jax.make_jaxpr(lambda *a: fn(*a, scale=0.125))(*args)
    out = []
    _flatten(closed.jaxpr, out, {})
    # Memory addresses and source locations differ between the two modules.
    return [re.sub(r"0x[0-9a-f]+|\S+\.py:\d+", "", line) for line in out]


def main(commit: str, fn_name: str = "fused_backward") -> bool:
    old = _module_at(commit)
    same = True
    for h in (64, 128):
        a, b = structure(old, fn_name, h), structure(hopper, fn_name, h)
        print(f"{fn_name} H={h}: {len(a)} vs {len(b)} entries, same: {a == b}")
        if a != b:
            same = False
            import difflib

            print(
                "\n".join(
                    list(difflib.unified_diff(a, b, commit, "working tree", lineterm=""))[:60]
                )
            )
    return same


if __name__ == "__main__":
    sys.exit(0 if main(*sys.argv[1:]) else 1)
