"""`python -m eval stability`: the stability report of runs, or of a whole grid it trains first.

  python -m eval stability runs/a runs/b --out=runs/ab          # report on finished runs
  python -m eval stability --config=configs/stress_160m_grid.py  # train the grid, then report
  python -m eval stability --config=configs/stress_160m_grid.py --shard=1/2  # half, one per GPU
  python -m eval stability --config=configs/stress_160m_grid.py --report_only

With --config (a config with a `grid` section), every run of the grid that has no record yet is
trained (a killed one resumes from its checkpoint), and the report covers every record of the
grid. Writes OUT/stability.png, stability.md and stability.json and prints the tables.
Logic: sigjax/evaluation/_runs.py (stability_report) and _grid.py.
"""

import argparse
import logging
import shlex

from eval._overrides import add_grid_flags, load_config, override, parse_sets


def parser(prog: str = "python -m eval stability") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", help="run directories (without --config)")
    p.add_argument("--out", default=None, help="report directory (default: grid.report or .)")
    p.add_argument("--config", default=None, help="grid config: module or file (configs/x.py)")
    add_grid_flags(p, ("attentions", "learning_rates", "seeds"))
    return p


def main(argv, prog: str = "python -m eval stability"):
    args = parser(prog).parse_args(argv)
    if bool(args.runs) == bool(args.config):
        raise ValueError(
            f"stability: got runs={args.runs} and --config={args.config!r}; expected run "
            "directories or --config, one of the two"
        )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    from sigjax.evaluation import (
        grid_from_config,
        read_records,
        run_cell,
        shard_cells,
        stability_report,
        use_compilation_cache,
    )

    if not args.config:
        return stability_report(args.runs, args.out)
    config = load_config(args.config)
    if "grid" not in config:
        raise ValueError(f"--config: got {args.config!r}, expected a config with a grid section")
    override(config, parse_sets(args.set))
    grid = config.grid
    if not args.report_only:
        given = {
            k: [float(x) if k == "learning_rates" else x for x in getattr(args, k).split(",")]
            for k in ("attentions", "learning_rates", "seeds")
            if getattr(args, k)
        }
        if "seeds" in given:
            given["seeds"] = [int(s) for s in given["seeds"]]
        use_compilation_cache(grid.workdir)
        for cell in shard_cells(grid_from_config(config, **given), args.shard):
            run_cell(
                config,
                cell,
                grid.workdir,
                grid.record,
                command=f"{prog} {shlex.join(argv)}",
                delete_checkpoints=grid.get("delete_checkpoints", False),
            )
    records = [r["record"] for r in read_records(grid.record)]
    if not records:
        raise ValueError(f"--config: no finished runs in {grid.record}; expected some to report")
    return stability_report(records, args.out or grid.get("report") or ".")
