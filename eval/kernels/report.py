"""Records and their provenance (kernels.json), markdown tables (kernels.md), plot (kernels.png)."""

import datetime
import json
import math
import os
import pathlib
import platform

import jax

from eval.kernels.specs import KNOWN_IMPLS, MODES
from sigjax._io import atomic_write, git_commit


class Results:
    """Records plus run metadata, rewritten (atomically) to kernels.json after every change."""

    def __init__(self, path: pathlib.Path, meta: dict):
        self.path, self.meta, self.records = path, meta, []

    def add(self, rec: dict, echo: bool = True) -> None:
        self.records.append(rec)
        if echo:
            keys = ("impl", "mode", "head_dim", "seq_len", "padding", "causal", "status")
            brief = {k: rec.get(k) for k in keys}
            for k in ("tflops", "worst_rel_err", "peak_bytes", "error", "skip_reason"):
                if rec.get(k) is not None:
                    brief[k] = rec[k]
            print(json.dumps(_jsonable(brief))[:400], flush=True)
        self.flush()

    def flush(self) -> None:
        atomic_write(
            self.path, json.dumps(_jsonable({**self.meta, "results": self.records}), indent=1)
        )


def _jsonable(x):
    """Non-finite floats become strings ("inf", "nan"): strict JSON readers reject them."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def run_meta(argv) -> dict:
    dev = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m eval kernels " + " ".join(argv),
        "commit": git_commit(),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _version(pkg: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _index(records):
    """{(H, T, padding, causal, mode): {impl: record}} of timing records."""
    table = {}
    for r in records:
        if r.get("kind") == "time":
            key = (r["head_dim"], r["seq_len"], r["padding"], r["causal"], r["mode"])
            table.setdefault(key, {})[r["impl"]] = r
    return table


def _tflops_cell(r) -> str:
    if r is None:
        return ""
    if r.get("tflops") is not None:
        mark = " WRONG" if r.get("status") == "wrong" else ""
        return f"{r['tflops']:.3g}{mark}" if r["tflops"] < 100 else f"{r['tflops']:.0f}{mark}"
    return {"error": "error", "skipped": "skip", "unavailable": "n/a"}.get(r.get("status"), "?")


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else ""


def _time(r):
    return r.get("time_s") if r and r.get("status") == "ok" else None


def ok_tflops(r):
    return r.get("tflops") if r and r.get("status") == "ok" else None


def markdown_report(meta: dict, records: list[dict]) -> str:
    """kernels.md: metadata, one TFLOPS table per mode with ratio columns, problems, memory.

    Ratios use only measurements that passed the correctness check. Column meanings: pallas/cudnn
    and pallas/triton are TFLOPS ratios (> 1: pallas faster); "pad/dense time" is pallas time at
    this padding over pallas time unpadded (same T, causal); "causal/full time" is pallas causal
    time over non-causal time (same T, padding). A TFLOPS cell marked WRONG failed the check.

    Args:
      meta: run metadata (date, device, versions, command).
      records: kernels.json's records.

    Returns:
      The markdown text.
    """
    lines = ["# Attention kernel benchmark", ""]
    for k in ("date", "device", "backend", "jax", "jaxlib", "python", "commit", "command"):
        lines.append(f"- {k}: `{meta.get(k)}`")
    if meta.get("xla_flags"):  # Compiler options change what is timed (docs/benchmarks.md run 25).
        lines.append(f"- XLA_FLAGS: `{meta['xla_flags']}`")
    ts = meta.get("triton_sigmoid")
    if ts is not None:
        lines.append(f"- triton_sigmoid: `{json.dumps(ts)[:300]}`")
    table = _index(records)
    impls = [i for i in KNOWN_IMPLS if any(i in row for row in table.values())]
    for mode in MODES:
        keys = sorted(k for k in table if k[4] == mode)
        if not keys:
            continue
        lines += ["", f"## {mode} TFLOPS (valid tokens only)", ""]
        head = ["H", "T", "B", "pad", "causal", *impls]
        head += ["pallas/cudnn", "pallas/triton", "pad/dense time", "causal/full time"]
        hopper = "pallas_hopper" in impls
        head += ["hopper/cudnn", "hopper pad/dense time"] if hopper else []
        head += ["pallas rel err", "cudnn ran"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key in keys:
            h, t, pad, causal, _ = key
            row = table[key]
            p = row.get("pallas")
            dense = table.get((h, t, 0.0, causal, mode), {}).get("pallas")
            full = table.get((h, t, pad, False, mode), {}).get("pallas")
            any_rec = next(iter(row.values()))
            err = p.get("worst_rel_err") if p else None
            cells = [str(h), str(t), str(any_rec["batch"]), f"{pad:.2f}", str(int(causal))]
            cells += [_tflops_cell(row.get(i)) for i in impls]
            cells += [
                ratio(ok_tflops(p), ok_tflops(row.get("cudnn"))),
                ratio(ok_tflops(p), ok_tflops(row.get("triton_sigmoid"))),
                ratio(_time(p), _time(dense)) if pad else "",
                ratio(_time(p), _time(full)) if causal else "",
                "" if err is None else f"{err:.1e}",
                (row.get("cudnn") or {}).get("impl_ran", "").split(" (")[0],
            ]
            if hopper:
                hp = row.get("pallas_hopper")
                dense_hp = table.get((h, t, 0.0, causal, mode), {}).get("pallas_hopper")
                cells[-2:-2] = [
                    ratio(ok_tflops(hp), ok_tflops(row.get("cudnn"))),
                    ratio(_time(hp), _time(dense_hp)) if pad else "",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    mem = [r for r in records if r.get("kind") == "memory"]
    if mem:
        lines += ["", "## Peak device memory, forward+backward (B = 1, dense, non-causal)", ""]
        lines += ["Linear memory in T shows as a constant peak KiB per token.", ""]
        head = "| impl | H | N | T | peak MiB | peak KiB / token | compiled MiB | status |"
        lines += [head, "|" + "---|" * 8]
        for r in sorted(mem, key=lambda r: (r["impl"], r["head_dim"], r["seq_len"])):
            mib = lambda b: "" if b is None else f"{b / 2**20:.4g}"  # noqa: E731
            per_token = lambda b, t: "" if b is None else f"{b / 2**10 / t:.4g}"  # noqa: E731
            status = r.get("status", "")
            if status != "ok":
                status += f": {(r.get('error') or r.get('skip_reason') or '')[:80]}"
            lines.append(
                f"| {r['impl']} | {r['head_dim']} | {r['heads']} | {r['seq_len']} | "
                f"{mib(r.get('peak_bytes'))} | {per_token(r.get('peak_bytes'), r['seq_len'])} | "
                f"{mib(r.get('compiled_bytes'))} | {status} |"
            )
    bad = [r for r in records if r.get("status") not in ("ok", None)]
    fallbacks = sorted({r["impl_ran"] for r in records if "refused" in r.get("impl_ran", "")})
    if bad or fallbacks:
        lines += ["", "## Problems", ""]
        lines += [f"- cudnn fell back: {f[:300]}" for f in fallbacks]
        # Skipped and unavailable measurements share a reason: one line per reason.
        grouped = {}
        for r in bad:
            if r["status"] in ("skipped", "unavailable"):
                key = (r["status"], r["impl"], r.get("kind"), r.get("skip_reason"))
                grouped[key] = grouped.get(key, 0) + 1
                continue
            what = r.get("error") or ""
            if r["status"] == "wrong":
                what = f"worst relative error {r['worst_rel_err']:.3g} > tol {r['tol']:g}: "
                what += json.dumps(_jsonable(r["max_rel_err"]))
            lines.append(
                f"- {r.get('kind')} {r['impl']} H={r['head_dim']} T={r['seq_len']} "
                f"pad={r['padding']} causal={int(r['causal'])} {r['mode']}: "
                f"**{r['status']}** {what[:300]}"
            )
        for (status, impl, kind, why), n in grouped.items():
            lines.append(f"- {n} {kind} measurement(s) of {impl} **{status}**: {str(why)[:300]}")
    return "\n".join(lines) + "\n"


def summary_table(records: list[dict]) -> str:
    """A short plain-text table: dense, non-causal TFLOPS per implementation, and problems."""
    table = _index(records)
    impls = [i for i in KNOWN_IMPLS if any(i in row for row in table.values())]
    hopper = ["hopper/cudnn"] if "pallas_hopper" in impls else []
    rows = [["mode", "H", "T", *impls, "pallas/cudnn", "pallas/triton", *hopper]]
    for key in sorted(table):
        h, t, pad, causal, mode = key
        if pad or causal:
            continue
        row = table[key]
        rows.append(
            [mode, str(h), str(t)]
            + [_tflops_cell(row.get(i)) for i in impls]
            + [
                ratio(ok_tflops(row.get("pallas")), ok_tflops(row.get("cudnn"))),
                ratio(ok_tflops(row.get("pallas")), ok_tflops(row.get("triton_sigmoid"))),
            ]
            + [ratio(ok_tflops(row.get("pallas_hopper")), ok_tflops(row.get("cudnn")))]
            * len(hopper)
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    text = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    counts = {}
    for r in records:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    text.append(f"TFLOPS, dense non-causal. Records by status: {counts}")
    return "\n".join(text)


def plot_tflops(records: list[dict], path) -> None:
    """kernels.png: TFLOPS vs T (log axis) for dense, non-causal shapes; one line per
    implementation, one panel per (mode, H). Only measurements that passed the check are drawn.

    Args:
      records: kernels.json's records.
      path: the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [
        r
        for r in records
        if r.get("kind") == "time" and ok_tflops(r) and not r["padding"] and not r["causal"]
    ]
    modes = [m for m in MODES if any(r["mode"] == m for r in ok)] or ["fwd"]
    dims = sorted({r["head_dim"] for r in ok}) or [0]
    fig, axes = plt.subplots(
        len(modes), len(dims), figsize=(5 * len(dims), 3.8 * len(modes)), squeeze=False
    )
    for i, mode in enumerate(modes):
        for j, h in enumerate(dims):
            ax = axes[i][j]
            for impl in KNOWN_IMPLS:
                pts = sorted(
                    (r["seq_len"], r["tflops"])
                    for r in ok
                    if r["impl"] == impl and r["head_dim"] == h and r["mode"] == mode
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=impl)
            ax.set(xlabel="T", ylabel="TFLOPS", title=f"{mode}, H={h}")
            ax.set_xscale("log", base=2)
            ts = sorted({r["seq_len"] for r in ok if r["head_dim"] == h and r["mode"] == mode})
            ax.set_xticks(ts, [str(t) for t in ts])
            ax.minorticks_off()
            if ax.lines:
                ax.legend(fontsize=8)
    fig.suptitle("dense, non-causal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
