"""Tuning: sweeps `KernelConfig` per shape, checks and times each candidate, and merges the best
per (head dim, dtype, length bucket) into the device's JSON table."""

import dataclasses
import pathlib
import time

import jax

from eval.kernels import measure as measure_lib
from eval.kernels import report
from eval.kernels.specs import MODES, benchmark_shapes
from pallas_kernels.sigmoid_attention import config as config_lib
from pallas_kernels.sigmoid_attention.config import KernelConfig

# Grids of the tune mode. A fwdbwd sweep tunes the dQ tiles first (dK/dV at their defaults),
# then the dK/dV tiles with the best dQ tiles; warps and stages are shared.
_TUNE_GRIDS = {
    "fwd": dict(block_q=(64, 128), block_k=(32, 64, 128), num_warps=(4, 8), num_stages=(2, 3)),
    "dq": dict(
        block_q_dq=(32, 64, 128), block_k_dq=(32, 64), num_warps_bwd=(4, 8), num_stages_bwd=(1, 2)
    ),
    "dkv": dict(block_q_dkv=(32, 64), block_k_dkv=(32, 64, 128)),
}
_QUICK_TUNE_GRIDS = {
    "fwd": dict(block_q=(16, 32), block_k=(16,)),
    "dq": dict(block_q_dq=(16, 32)),
    "dkv": dict(block_k_dkv=(16, 32)),
}


def _grid(spec: dict) -> list[dict]:
    combos = [{}]
    for name, values in spec.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return combos


def tune(args, argv=()) -> dict:
    """Sweeps Pallas `KernelConfig`s per shape, checks and times each, keeps the best.

    For each (H, T, padding, causal, mode) shape: the table's configuration first, then every
    grid point; a candidate whose check fails is recorded and never chosen. Writes tune.json
    (metadata, every candidate, the best per (H, dtype, T bucket, causal, mode)) and merges one
    entry per (H, dtype, T bucket) into the device's table (`--table`, by default
    pallas_kernels/sigmoid_attention/tuned/<device>.json; under --quick, OUT/<device>.json),
    leaving the entries of other buckets as they were.

    Args:
      args: parsed flags (`parse_args`, tune mode).
      argv: the command-line arguments, recorded in the metadata.

    Returns:
      tune.json's content.
    """
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.budget_s
    grids = _QUICK_TUNE_GRIDS if args.quick else _TUNE_GRIDS
    results = report.Results(out / "tune.json", {**report.run_meta(argv), "args": vars(args)})
    best_fwd = {}  # (H, T, padding, causal) -> KernelConfig chosen by the fwd sweep.
    device_kind = jax.devices()[0].device_kind
    best = {}

    def try_candidate(shape, bs, stage):
        if shape.mode == "fwdbwd":  # The swept backward tiles are the Triton backward's.
            bs = dataclasses.replace(bs, hopper_bwd=False)
        fields = dataclasses.asdict(bs)
        rec = {"kind": "tune", "impl": "pallas", "stage": stage, **shape.params(), **fields}
        if time.time() > deadline:
            rec.update(status="skipped", skip_reason="time budget")
        else:
            try:
                rec.update(
                    measure_lib.measure(
                        "pallas",
                        shape,
                        reps=args.reps,
                        warmup=args.warmup,
                        tol=args.tol,
                        min_sample_s=args.min_sample_s,
                        kernel_config=bs,
                        time_wrong=False,
                    ),
                    stage=stage,
                    kind="tune",
                )
            except Exception as e:  # A candidate that fails to compile or run is just not chosen.
                rec.update(status="error", error=f"{type(e).__name__}: {e}"[:500])
        results.add(rec)
        return rec

    def sweep(shape, base, stage, grid, base_rec=None):
        recs = [base_rec or try_candidate(shape, base, f"{stage}:start")]
        for over in _grid(grid):
            try:
                bs = dataclasses.replace(base, **over)
            except ValueError as e:
                rec = {"kind": "tune", "impl": "pallas", "stage": stage, **shape.params(), **over}
                rec.update(status="error", error=str(e))
                results.add(rec)
                continue
            if bs != base:
                recs.append(try_candidate(shape, bs, stage))
        good = [r for r in recs if r.get("status") == "ok"]
        if not good:
            return base, None, recs[0]
        top = max(good, key=lambda r: r["tflops"])
        fields = {f.name: top[f.name] for f in dataclasses.fields(base)}
        return dataclasses.replace(base, **fields), top, recs[0]

    shapes = benchmark_shapes(
        args.head_dims,
        args.seq_lens,
        args.padding,
        args.causal,
        sorted(args.modes, key=MODES.index),  # fwd before fwdbwd: fwdbwd reuses its choice.
        tokens=args.tokens,
        hidden=args.hidden,
        dtype=args.dtype,
        seed=args.seed,
    )
    for shape in shapes:
        base = config_lib.default_config(shape.head_dim, shape.dtype, shape.seq_len, device_kind)
        fwd_key = (shape.head_dim, shape.seq_len, shape.padding, shape.causal)
        if shape.mode == "fwd":
            chosen, top, default = sweep(shape, base, "fwd", grids["fwd"])
            best_fwd[fwd_key] = chosen
        else:
            # Backward sweeps start from the forward tiles chosen above (when tuned this run);
            # the table's default is timed too, as the baseline of the speed-up.
            start = best_fwd.get(fwd_key, base)
            default = try_candidate(shape, base, "table default") if start != base else None
            after_dq, top_dq, start_rec = sweep(shape, start, "dq", grids["dq"])
            default = default or start_rec
            chosen, top, _ = sweep(shape, after_dq, "dkv", grids["dkv"], top_dq)
        if top is None:
            continue
        t_bucket = config_lib.next_power_of_2(shape.seq_len)
        key = (shape.head_dim, shape.dtype, t_bucket, shape.causal, shape.mode)
        best[key] = {
            "head_dim": shape.head_dim,
            "dtype": shape.dtype,
            "t_bucket": key[2],
            "seq_len": shape.seq_len,
            "padding": shape.padding,
            "causal": shape.causal,
            "mode": shape.mode,
            "config": dataclasses.asdict(chosen),
            "tflops": top["tflops"],
            "default_tflops": report.ok_tflops(default),
            "speedup_vs_default": report.ratio(top["tflops"], report.ok_tflops(default)) or None,
        }
    entries = table_entries(best, device_kind, results.meta)
    path = pathlib.Path(args.table) if args.table else _default_table_path(args, device_kind)
    if entries:
        config_lib.write_table(path, entries, device_kind=device_kind)
    results.meta["best"] = list(best.values())
    results.meta["table"] = {"path": str(path), "entries": entries}
    results.flush()
    print("\nBest configurations per (H, dtype, T bucket, causal, mode):")
    for b in best.values():
        print(
            f"  H={b['head_dim']} {b['dtype']} T<={b['t_bucket']} causal={int(b['causal'])} "
            f"{b['mode']}: {b['tflops']:.4g} TFLOPS (table default {b['default_tflops'] or 0:.4g})"
            f" {_config_repr(b['config'])}"
        )
    print(f"\nMerged {len(entries)} entries into {path}:")
    for e in entries:
        print(
            f"  H={e['head_dim']} {e['dtype']} T<={e['max_seq_len']}: ", _config_repr(e["config"])
        )
    print(f"wrote {out / 'tune.json'}")
    return {**results.meta, "results": results.records}


def _default_table_path(args, device_kind: str) -> pathlib.Path:
    # --quick runs on a CPU in interpret mode: its timings must not land in the kernels' tables.
    if args.quick:
        return pathlib.Path(args.out) / f"{config_lib.device_table_name(device_kind)}.json"
    return config_lib.table_path(device_kind)


def _config_repr(fields: dict) -> str:
    """`KernelConfig(...)` naming the fields that differ from the dataclass defaults."""
    plain = dataclasses.asdict(KernelConfig())
    shown = {k: v for k, v in fields.items() if plain.get(k) != v}
    return "KernelConfig(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")"


_BWD_FIELDS = frozenset(
    {"block_q_dq", "block_k_dq", "block_q_dkv", "block_k_dkv", "num_warps_bwd", "num_stages_bwd"}
)


def table_entries(best: dict, device_kind: str | None, meta: dict | None = None) -> list[dict]:
    """One table entry per (H, dtype, T bucket) from the best candidates of a tune run.

    Forward fields come from the best fwd shape, backward fields from the best fwdbwd shape
    (non-causal preferred over causal in both), the rest from the configuration the tables give
    today for that bucket, so an entry changes only what was measured.

    Args:
      best: {(H, dtype, T bucket, causal, mode): record} as built by `tune`.
      device_kind: the device the records were measured on.
      meta: run metadata; its date and commit are noted in each entry.

    Returns:
      Entries for `pallas_kernels.sigmoid_attention.config.write_table`.
    """
    taken, notes = {}, {}
    for (h, dtype, tb, causal, mode), b in sorted(best.items(), key=lambda kv: kv[0][3]):
        entry = taken.setdefault((h, dtype, tb), {})
        if mode in entry:  # Non-causal sorts first: it wins.
            continue
        fields = set(b["config"]) - _BWD_FIELDS if mode == "fwd" else _BWD_FIELDS
        entry[mode] = {k: b["config"][k] for k in fields}
        note = f"{mode} {b['tflops']:.4g} TFLOPS at T={b['seq_len']} causal={int(causal)}"
        note += f" (table before: {b['default_tflops'] or 0:.4g})"
        notes.setdefault((h, dtype, tb), []).append(note)
    out = []
    for (h, dtype, tb), by_mode in taken.items():
        bucket_h = min(max(config_lib.next_power_of_2(h), 16), 256)
        fields = dataclasses.asdict(config_lib.default_config(bucket_h, dtype, tb, device_kind))
        for part in by_mode.values():
            fields.update(part)
        KernelConfig(**fields)  # Validates.
        source = "; ".join(notes[(h, dtype, tb)])
        if meta:
            source += f"; {meta.get('date')} commit {meta.get('commit')}"
        out.append(
            {
                "head_dim": bucket_h,
                "dtype": dtype,
                "max_seq_len": tb,
                "config": fields,
                "source": source,
            }
        )
    return out
