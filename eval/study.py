"""`python -m eval study`: the sigmoid-vs-softmax study (data sets x attentions x LRs x seeds).

  python -m eval study --config=configs/study_base.py            # the whole grid (GPU)
  python -m eval study --config=configs/study_base.py --shard=0/2  # half of it, one per GPU
  python -m eval study --config=configs/study_base.py --datasets=zeisel --seeds=1  # some runs
  python -m eval study --config=configs/study_base.py --report_only  # tables from the records
  python -m eval study --config=configs/zeroshot_grid.py --set=data.path=pooled.h5ad  # zero-shot
  nice -n 10 python -m eval study --out=runs/study   # the older CPU study (configs.small)

A config with a `grid` section is a whole study: its runs, their work and record directories,
the results file and section (see configs/study_base.py). Any other config is trained with the
CPU budget below (the older study). Finished runs are skipped: rerun the same command to resume.
The tables go between `<!-- study:NAME -->` markers of --results, the rest of the file kept.
Logic: sigjax/evaluation/_study.py and _grid.py.
"""

import argparse
import json
import logging
import shlex
import sys

from eval._overrides import add_grid_flags, load_config, override, parse_sets

# The CPU budget of the older study (2 shared cores, ~30 minutes for 24 runs).
CPU_BUDGET = {
    "data.max_len": 128,
    "data.batch_size": 16,
    "data.eval_batch_size": 128,
    "data.synthetic.n_cells": 1500,
    "data.synthetic.n_genes": 2000,
    "data.synthetic.min_genes": 50,
    "data.synthetic.max_genes": 300,
    "train.num_steps": 150,
    "train.warmup_steps": 15,
    "train.eval_every": 150,
    "train.checkpoint_every": 150,
    "train.log_every": 10,
    "train.progress_bar": False,
}
OLD = {"out": "runs/study", "datasets": "pbmc68k_reduced,zeisel,cbmc,synthetic", "seeds": "0,1,2"}


def parser(prog: str = "python -m eval study") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs.small", help="module or file (configs/x.py)")
    p.add_argument("--out", default=None, help="work directories (default: grid.workdir)")
    p.add_argument("--record", default=None, help="run records (default: grid.record or --out)")
    p.add_argument("--results", default=None, help="markdown file (default: docs/results.md)")
    p.add_argument("--name", default=None, help="results section (default: grid.name or study)")
    p.add_argument("--max_cells", type=int, default=None, help="held-out cells scored (0 = all)")
    add_grid_flags(p, ("datasets", "attentions", "learning_rates", "seeds"))
    return p


def main(argv, prog: str = "python -m eval study"):
    args = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    from sigjax.evaluation import read_records, report_study, run_study, use_compilation_cache

    config = load_config(args.config)
    grid = config.get("grid")
    overrides = {**({} if grid else CPU_BUDGET), **parse_sets(args.set)}
    override(config, overrides)
    g = grid or {"datasets": OLD["datasets"].split(","), "seeds": OLD["seeds"].split(",")}
    lists = {
        k: getattr(args, k).split(",") if getattr(args, k) else g.get(k)
        for k in ("datasets", "attentions", "learning_rates", "seeds")
    }
    out = args.out or (grid.workdir if grid else OLD["out"])
    record = args.record or (grid.record if grid else out)
    max_cells = args.max_cells if args.max_cells is not None else g.get("max_cells", 2000)
    # A zero-shot grid (configs/zeroshot_grid.py): pooled pretraining, labelled sets embedded.
    zeroshot = tuple(g.get("zeroshot") or ()) if grid else ()
    command = f"{prog} {shlex.join(argv)}".strip()
    if not args.report_only:
        if grid:
            use_compilation_cache(out)
        run_study(
            config,
            out,
            datasets=lists["datasets"],
            seeds=[int(s) for s in lists["seeds"]],
            attentions=lists["attentions"] or ("sigmoid", "softmax"),
            learning_rates=[float(x) for x in lists["learning_rates"] or ()] or None,
            max_cells=max_cells or None,
            extra_poolings=grid.get("extra_poolings") if grid else None,
            record=record,
            shard=args.shard,
            command=command,
            delete_checkpoints=bool(grid and grid.get("delete_checkpoints")),
            zeroshot=zeroshot or None,
            source=(grid.get("source") or None) if grid else None,
        )
    text = report_study(
        read_records(record),  # Every finished run, of this process or another (--shard).
        results=args.results or (grid.results if grid else "docs/results.md"),
        name=args.name or (grid.name if grid else "study"),
        command=command,
        config_text=(
            f"config: {args.config}"
            + "".join(f"\n  {k} = {v!r}" for k, v in overrides.items())
            + "".join(f"\n{s}: {json.dumps(config[s].to_dict())}" for s in ("model", "train"))
            + (
                f"\ngrid (each run's learning rate, seed): {json.dumps(grid.to_dict())}"
                if grid
                else ""
            )
            + (
                f"\nlabelled sets embedded zero-shot: {', '.join(zeroshot)}; cells per set: at "
                f"most {max_cells or 'all'}"
                if zeroshot
                else f"\nheld-out cells scored per run: at most {max_cells or 'all'}"
            )
        ),
        plots_dir=record if grid else None,
        zeroshot=zeroshot or None,
    )
    print(text)


if __name__ == "__main__":  # The older spelling, `python -m eval.study`, still works.
    main(sys.argv[1:], prog="python -m eval.study")
