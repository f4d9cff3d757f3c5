"""Kernel benchmark: sigjax's Pallas kernel vs its xla path, cuDNN softmax and TritonSigmoid.

  python -m eval kernels --out=DIR [--head_dims=64,128] [--seq_lens=1024,...] [--padding=0,0.25,0.5]
      [--causal=0,1] [--modes=fwd,fwdbwd] [--impls=pallas,xla,cudnn,triton_sigmoid] [--reps=30]
      [--budget_s=500] [--quick]
  python -m eval kernels --tune --out=DIR --head_dims=128 --seq_lens=4096

Shapes follow TritonSigmoid's benchmark: 16,384 tokens per batch and hidden 2048, so N = 2048 / H
and B = 16384 / T; bf16. TFLOPS count valid tokens only: 4 N H sum_b len_b^2 for the forward (half
that when causal), x3.5 for forward+backward. Each time is the median of `reps` runs after
warm-up on random normal inputs, after a correctness check against a float32 xla reference.
Writes kernels.json, kernels.md and kernels.png under --out (or tune.json with --tune).
"""

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import sigjax

TOKENS, HIDDEN = 16384, 2048


def lengths_for(batch: int, seq_len: int, padding: float, seed: int = 0) -> np.ndarray:
    """Per-sequence valid lengths whose mean valid fraction is 1 - padding (0: all full)."""
    if padding <= 0:
        return np.full(batch, seq_len, np.int32)
    rng = np.random.default_rng(seed)
    mean = seq_len * (1 - padding)
    spread = min(mean, seq_len - mean) * 0.5
    lens = np.clip(np.rint(rng.uniform(mean - spread, mean + spread, batch)), 1, seq_len)
    lens = lens + np.rint(mean - lens.mean())  # Pin the mean.
    return np.clip(lens, 1, seq_len).astype(np.int32)


def flops(heads: int, head_dim: int, lens, causal: bool, mode: str) -> float:
    f = 4.0 * heads * head_dim * float(np.sum(np.asarray(lens, np.float64) ** 2))
    f = f / 2 if causal else f
    return f * 3.5 if mode == "fwdbwd" else f


def _fn(impl: str, causal: bool, padded: bool, mode: str, block_sizes=None):
    def fwd(q, k, v, lens):
        kw = dict(is_causal=causal)
        if padded:
            kw.update(query_seq_lengths=lens, key_value_seq_lengths=lens)
        if impl == "cudnn":
            return sigjax.softmax_attention(q, k, v, implementation="cudnn", **kw)
        if impl == "xla_f32":
            return sigjax.sigmoid_attention(q, k, v, implementation="xla", **kw)
        return sigjax.sigmoid_attention(q, k, v, implementation=impl, block_sizes=block_sizes, **kw)

    if mode == "fwd":
        return jax.jit(fwd)

    def fwdbwd(q, k, v, lens, do):
        out, vjp = jax.vjp(lambda q, k, v: fwd(q, k, v, lens), q, k, v)
        return out, vjp(do.astype(out.dtype))

    return jax.jit(fwdbwd)


def _time(f, args, reps: int) -> float:
    jax.block_until_ready(f(*args))
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _inputs(cfg, dtype=jnp.bfloat16):
    rng = np.random.default_rng(1)
    shape = (cfg["batch"], cfg["seq_len"], cfg["heads"], cfg["head_dim"])
    q, k, v, do = (jnp.asarray(rng.standard_normal(shape, np.float32), dtype) for _ in range(4))
    return q, k, v, jnp.asarray(cfg["lengths"], jnp.int32), do


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6))


def check(cfg, impl: str, block_sizes=None) -> float:
    """Max relative error of the bf16 impl against the float32 xla reference (output and, for
    fwdbwd, each gradient), on a slice of at most 2 sequences to bound the reference's memory."""
    small = {**cfg, "batch": min(cfg["batch"], 2), "lengths": cfg["lengths"][:2]}
    q, k, v, lens, do = _inputs(small)
    padded = min(cfg["lengths"]) < cfg["seq_len"]
    if impl == "cudnn":
        return float("nan")  # Softmax is a different op: no sigmoid reference to compare with.
    got = _fn(impl, cfg["causal"], padded, cfg["mode"], block_sizes)
    ref = _fn("xla_f32", cfg["causal"], padded, cfg["mode"])
    f32 = [x.astype(jnp.float32) for x in (q, k, v)]
    if cfg["mode"] == "fwd":
        return _rel(got(q, k, v, lens), ref(*f32, lens))
    (o, g), (ro, rg) = got(q, k, v, lens, do), ref(*f32, lens, do.astype(jnp.float32))
    return max(_rel(o, ro), *(_rel(a, b) for a, b in zip(g, rg, strict=True)))


def measure(cfg, impl: str, reps: int, block_sizes=None) -> dict:
    q, k, v, lens, do = _inputs(cfg)
    padded = min(cfg["lengths"]) < cfg["seq_len"]
    f = _fn(impl, cfg["causal"], padded, cfg["mode"], block_sizes)
    args = (q, k, v, lens) if cfg["mode"] == "fwd" else (q, k, v, lens, do)
    t = _time(f, args, reps)
    fl = flops(cfg["heads"], cfg["head_dim"], cfg["lengths"], cfg["causal"], cfg["mode"])
    return {"time_s": t, "tflops": fl / t / 1e12}


def peak_memory(cfg, impl: str) -> int | None:
    """Peak device bytes of one jitted forward+backward, in a fresh process (clean allocator stats)."""
    code = (
        "import json,sys,jax;from sigjax.evaluation import kernel_bench as kb;"
        "c=json.loads(sys.argv[1]);q,k,v,l,do=kb._inputs(c);"
        "f=kb._fn(sys.argv[2],c['causal'],False,'fwdbwd');jax.block_until_ready(f(q,k,v,l,do));"
        "print(jax.devices()[0].memory_stats()['peak_bytes_in_use'])"
    )
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    r = subprocess.run([sys.executable, "-c", code, json.dumps(cfg), impl], capture_output=True,
                       text=True, env=env, timeout=300)
    try:
        return int(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def configs(args) -> list[dict]:
    out = []
    for h in args.head_dims:
        for t in args.seq_lens:
            b = max(TOKENS // t, 1)
            for pad in args.padding:
                for causal in args.causal:
                    for mode in args.modes:
                        out.append({"head_dim": h, "heads": HIDDEN // h, "seq_len": t, "batch": b,
                                    "padding": pad, "causal": bool(causal), "mode": mode,
                                    "lengths": lengths_for(b, t, pad).tolist()})
    return out


def _markdown(results: list[dict]) -> str:
    keyf = lambda r: (r["head_dim"], r["seq_len"], r["padding"], r["causal"], r["mode"])  # noqa: E731
    table = {}
    for r in results:
        if "tflops" in r:
            table.setdefault(keyf(r), {})[r["impl"]] = r
    lines = ["| H | T | pad | causal | mode | pallas | xla | cudnn softmax | TritonSigmoid | "
             "pallas/cudnn | pallas/TritonSigmoid | pallas time / unpadded | pallas time / non-causal | err |",
             "|" + "---|" * 14]
    for key in sorted(table):
        row = table[key]
        h, t, pad, causal, mode = key
        get = lambda impl: row.get(impl, {}).get("tflops")  # noqa: E731
        ratio = lambda a, b: f"{a / b:.2f}" if a and b else ""  # noqa: E731
        unpadded = table.get((h, t, 0.0, causal, mode), {}).get("pallas", {}).get("time_s")
        noncausal = table.get((h, t, pad, False, mode), {}).get("pallas", {}).get("time_s")
        pt = row.get("pallas", {}).get("time_s")
        cells = [f"{get(i):.0f}" if get(i) else "" for i in ("pallas", "xla", "cudnn", "triton_sigmoid")]
        err = row.get("pallas", {}).get("max_rel_err")
        lines.append(
            f"| {h} | {t} | {pad:.2f} | {int(causal)} | {mode} | " + " | ".join(cells)
            + f" | {ratio(get('pallas'), get('cudnn'))} | {ratio(get('pallas'), get('triton_sigmoid'))}"
            + f" | {ratio(pt, unpadded) if pad else ''} | {ratio(pt, noncausal) if causal else ''}"
            + f" | {'' if err is None else f'{err:.1e}'} |"
        )
    return "\n".join(lines)


def _plot(results: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["head_dim"], r["mode"]) for r in results if "tflops" in r})
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (h, mode) in zip(axes[0], panels, strict=True):
        for impl in ("pallas", "xla", "cudnn", "triton_sigmoid"):
            pts = sorted((r["seq_len"], r["tflops"]) for r in results if "tflops" in r and r["impl"] == impl
                         and r["head_dim"] == h and r["mode"] == mode and r["padding"] == 0 and not r["causal"])
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=impl)
        ax.set(xscale="log", xlabel="T", ylabel="TFLOPS", title=f"H={h} {mode} (dense, non-causal)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args) -> list[dict]:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "jax": jax.__version__, "device": jax.devices()[0].device_kind}
    results, start = [], time.time()

    def save():
        (out / "kernels.json").write_text(json.dumps({**header, "results": results}, indent=1))

    cfgs = configs(args)
    for cfg in cfgs:
        for impl in [i for i in args.impls if i != "triton_sigmoid"]:
            row = {**{k: v for k, v in cfg.items() if k != "lengths"}, "impl": impl,
                   "valid_tokens": int(np.sum(cfg["lengths"]))}
            if time.time() - start > args.budget_s:
                results.append({**row, "skipped": "time budget"})
                continue
            if impl == "xla" and cfg["seq_len"] * cfg["seq_len"] * cfg["batch"] * cfg["heads"] > 2**33:
                results.append({**row, "skipped": "xla T x S scores too large"})
                continue
            try:
                row["max_rel_err"] = check(cfg, impl)
                row.update(measure(cfg, impl, args.reps))
            except Exception as e:  # Record and go on: one failed config must not cost the run.
                row["error"] = f"{type(e).__name__}: {e}"[:400]
            results.append(row)
            print(json.dumps(row), flush=True)
            save()
    if "triton_sigmoid" in args.impls and time.time() - start < args.budget_s:
        todo = [{**c, "reps": args.reps} for c in cfgs]
        r = subprocess.run([sys.executable, "-m", "sigjax.evaluation._triton_sigmoid_runner", json.dumps(todo)],
                           capture_output=True, text=True, timeout=max(args.budget_s - (time.time() - start), 60))
        for line in r.stdout.splitlines():
            rec = json.loads(line)
            if "unavailable" in rec:
                header["triton_sigmoid"] = rec["unavailable"]
                break
            rec.pop("lengths", None)
            rec.pop("reps", None)
            if "time_s" in rec:
                c = next(c for c in cfgs if all(c[k] == rec[k] for k in ("head_dim", "seq_len", "padding", "causal", "mode")))
                rec["tflops"] = flops(c["heads"], c["head_dim"], c["lengths"], c["causal"], c["mode"]) / rec["time_s"] / 1e12
            results.append(rec)
        if r.returncode and not any(x.get("impl") == "triton_sigmoid" for x in results):
            header["triton_sigmoid"] = f"runner failed: {r.stderr[-300:]}"
        save()
    if args.memory:
        for t in args.memory:
            cfg = {"head_dim": 128, "heads": 16, "seq_len": t, "batch": 1, "causal": False,
                   "mode": "fwdbwd", "lengths": [t]}
            for impl in ("pallas", "cudnn"):
                results.append({"kind": "memory", "impl": impl, "seq_len": t, "head_dim": 128, "heads": 16,
                                "batch": 1, "peak_bytes": peak_memory(cfg, impl)})
                print(json.dumps(results[-1]), flush=True)
        save()
    md = _markdown(results)
    mem = [r for r in results if r.get("kind") == "memory"]
    if mem:
        md += "\n\nPeak device memory, forward+backward (B=1, N=16, H=128, bf16):\n\n| impl | T | peak MiB |\n|---|---|---|\n"
        md += "\n".join(f"| {r['impl']} | {r['seq_len']} | {(r['peak_bytes'] or 0) / 2**20:.0f} |" for r in mem)
    (out / "kernels.md").write_text(f"{header}\n\n{md}\n")
    _plot(results, out / "kernels.png")
    print(md)
    return results


def tune(args) -> list[dict]:
    """Sweeps BlockSizes for each (H, T, mode); prints and writes the best per configuration."""
    from pallas_kernels.sigmoid_attention import default_block_sizes

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, start = [], time.time()
    for cfg in configs(args):
        base = default_block_sizes(cfg["head_dim"], "bfloat16")
        if cfg["mode"] == "fwd":
            grid = [dict(block_q=bq, block_k=bk, num_warps=w, num_stages=s)
                    for bq in (64, 128, 256) for bk in (32, 64, 128) for w in (4, 8) for s in (2, 3, 4)]
        else:
            grid = [dict(block_q_dq=bq, block_k_dq=bk, block_q_dkv=bq, block_k_dkv=bk, num_warps_bwd=w,
                         num_stages_bwd=s) for bq in (32, 64, 128) for bk in (32, 64, 128) for w in (4, 8)
                    for s in (1, 2, 3)]
        for over in grid:
            if time.time() - start > args.budget_s:
                break
            bs = dataclasses.replace(base, **over)
            row = {**{k: v for k, v in cfg.items() if k != "lengths"}, **over}
            try:
                err = check(cfg, "pallas", bs)
                if not err < 5e-2:
                    raise ValueError(f"wrong result: max relative error {err}")
                row.update(measure(cfg, "pallas", max(args.reps // 2, 5), bs))
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"[:200]
            results.append(row)
            print(json.dumps(row), flush=True)
            (out / "tune.json").write_text(json.dumps(results, indent=1))
    best = {}
    for r in results:
        key = (r["head_dim"], r["seq_len"], r["causal"], r["mode"])
        if "tflops" in r and r["tflops"] > best.get(key, {}).get("tflops", 0):
            best[key] = r
    for key, r in sorted(best.items()):
        print("best", key, {k: v for k, v in r.items() if k.startswith(("block_", "num_", "tflops"))})
    return results


def parse(argv):
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    floats = lambda s: [float(x) for x in s.split(",") if x]  # noqa: E731
    p = argparse.ArgumentParser(prog="python -m eval kernels", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--head_dims", type=ints, default=[64, 128])
    p.add_argument("--seq_lens", type=ints, default=[1024, 2048, 4096, 8192, 16384])
    p.add_argument("--padding", type=floats, default=[0.0, 0.25, 0.5])
    p.add_argument("--causal", type=ints, default=[0, 1])
    p.add_argument("--modes", type=lambda s: s.split(","), default=["fwd", "fwdbwd"])
    p.add_argument("--impls", type=lambda s: s.split(","), default=["pallas", "xla", "cudnn", "triton_sigmoid"])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--budget_s", type=float, default=3600)
    p.add_argument("--memory", type=ints, default=[], help="T values for peak-memory runs")
    p.add_argument("--tune", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny CPU-sized shapes (interpret mode)")
    args = p.parse_args(argv)
    if args.quick:
        global TOKENS, HIDDEN
        TOKENS, HIDDEN = 64, 64
        args.head_dims, args.seq_lens, args.reps = [32], [32], 2
        args.impls = [i for i in args.impls if i in ("pallas", "xla")]
    return args


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    return tune(args) if args.tune else run(args)


if __name__ == "__main__":
    main()
