"""The op and whole training steps with and without q times scale / 2 for the Hopper kernels
(`sigjax.attention._pallas.HOPPER_SCALED_Q`, issue 14, thirty-second session), in one process.

1. The op (`sigmoid_attention`, fwd+bwd, H=64, T=8K/16K, dense and 50% padding, the eval kernels
   shapes and check): sigjax with the flag on and off and cuDNN's softmax, ROUNDS rounds (default
   4), the order rotating.
2. Whole training steps at 8K tokens (161.5M, then base 8 x 8,192): sigmoid with the flag on and
   off and softmax, each compiled and warmed up once, then REPEATS samples of 10 steps each
   (default 4), the order rotating.
The flag is read when a program is traced, so each variant is compiled with it set. One JSON line
per result in $OUT/qs_in_model.jsonl; tables last.
    OUT=/tmp/out python docs/probes/qs_in_model.py [deadline_s]
"""

import functools
import json
import os
import statistics
import sys
import time
import traceback

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hopper_bwd  # noqa: E402 (emit, tables)

from eval._overrides import load_config, override, parse_sets  # noqa: E402
from eval.kernels import measure, specs  # noqa: E402
from eval.kernels.timing import time_callable  # noqa: E402
from sigjax.attention import _pallas  # noqa: E402
from sigjax.evaluation import _speed  # noqa: E402

LOG = "qs_in_model.jsonl"
emit = functools.partial(hopper_bwd.emit, log=LOG)
# name: (implementation, HOPPER_SCALED_Q)
OP_VARIANTS = {"sigjax_qs": ("pallas", True), "sigjax": ("pallas", False), "cudnn": ("cudnn", True)}
STEP_VARIANTS = {"sigmoid_qs": ("sigmoid", True), "sigmoid": ("sigmoid", False)}
STEP_VARIANTS["softmax"] = ("softmax", True)
CONFIGS = {
    "s160": ("configs.stress_160m", []),
    "base8k": (
        "configs.base",
        ["data.max_len=8192", "data.batch_size=8", "data.synthetic.n_genes=12000"],
    ),
}


def rotated(names, r):
    return names[r % len(names) :] + names[: r % len(names)]


def op_part(deadline: float, rounds: int):
    shapes = specs.benchmark_shapes([64], [8192, 16384], [0.0, 0.5], [False], ["fwdbwd"])
    for shape in shapes:
        args = specs.make_inputs(shape)
        prepared = {}
        for name, (impl, flag) in OP_VARIANTS.items():
            _pallas.HOPPER_SCALED_Q = flag
            try:
                prepared[name] = measure.prepare(impl, shape, args)
            except Exception as e:
                emit(dict(kind="op", variant=name, error=f"{type(e).__name__}: {e}"[:2000]))
                traceback.print_exc()
        for r in range(rounds):
            for name in rotated(list(prepared), r):
                if time.time() > deadline:
                    return
                rec, compiled = prepared[name]
                t = time_callable(compiled, args, reps=8, warmup=2, min_sample_s=0.05)
                emit(
                    dict(
                        kind="time",
                        part="op",
                        variant=name,
                        round=r,
                        h=shape.head_dim,
                        t=shape.seq_len,
                        lens=list(shape.lengths),
                        correct=rec.get("correct"),
                        max_rel_err=rec.get("max_rel_err"),
                        time_s=t["time_s"],
                        tflops=shape.flops / t["time_s"] / 1e12,
                    )
                )


def step_part(deadline: float, repeats: int):
    for cname, (module, sets) in CONFIGS.items():
        config = load_config(module)
        override(config, parse_sets(sets))
        prepared = {}
        for name, (attention, flag) in STEP_VARIANTS.items():
            if time.time() > deadline:
                return
            _pallas.HOPPER_SCALED_Q = flag
            c = config.copy_and_resolve_references()
            c.model.attention = attention
            prepared[name] = _speed._prepared_step(c, warmup=2, padding=0.0)
        samples = {name: [] for name in prepared}
        for r in range(repeats):
            for name in rotated(list(prepared), r):
                if time.time() > deadline:
                    break
                samples[name].append(prepared[name][0](10))
        for name, (_, record) in prepared.items():
            if samples[name]:
                rec = record(samples[name])
                emit(dict(kind="step", config=cname, variant=name, **rec))


def tables():
    med = hopper_bwd.medians(LOG, lambda r: (r["t"], tuple(r["lens"])[:2]))
    label = lambda k: f"op H=64 T={k[0]} lens={list(k[1])}"  # noqa: E731
    hopper_bwd.print_medians(med, label, ["cudnn"])
    steps = {}
    with open(os.path.join(hopper_bwd.OUT, LOG)) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "step":
                steps.setdefault(r["config"], {})[r["variant"]] = r
    for cname, recs in steps.items():
        soft = recs.get("softmax", {}).get("step_time_s")
        for name, r in recs.items():
            ratio = f" ({r['step_time_s'] / soft:.3f} of softmax)" if soft else ""
            mfu = r.get("mfu") or float("nan")
            print(f"step {cname} {name}: {r['step_time_s']:.4f} s{ratio}, MFU {mfu:.3f}", end="")
            print(f", samples {[round(x, 4) for x in r['step_times_s']]}")
        if "sigmoid" in recs and "sigmoid_qs" in recs:
            a, b = recs["sigmoid_qs"]["step_times_s"], recs["sigmoid"]["step_times_s"]
            print(f"step {cname} qs / no qs: {statistics.median(a) / statistics.median(b):.4f}")


def main():
    deadline = time.time() + float(sys.argv[1] if len(sys.argv) > 1 else 400)
    emit(dict(kind="meta", jax=jax.__version__, device=str(jax.devices()[0].device_kind)))
    if os.environ.get("PARTS", "op,step").find("op") >= 0:
        op_part(deadline - float(os.environ.get("STEP_S", 200)), int(os.environ.get("ROUNDS", 4)))
    if "step" in os.environ.get("PARTS", "op,step"):
        step_part(deadline, int(os.environ.get("REPEATS", 4)))
    tables()


if __name__ == "__main__":
    main()
