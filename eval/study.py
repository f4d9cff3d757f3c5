"""`python -m eval study`: the sigmoid-vs-softmax study (data sets x {sigmoid, softmax} x seeds).

  nice -n 10 python -m eval study --out=runs/study --results=docs/results.md

Trains `configs/small.py` with the CPU budget below (override with --set section.field=value),
scores every run and writes the summary (mean ± std over seeds, relative difference) to --results,
with the commit of the code. Finished runs are skipped: rerun the same command to resume.
Logic: sigjax/evaluation/_study.py.
"""

import argparse
import importlib
import json
import logging
import pathlib
import shlex
import sys

from eval._overrides import override, parse_sets

# The CPU budget of docs/results.md (2 shared cores, ~30 minutes for 24 runs).
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


def parser(prog: str = "python -m eval study") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/study")
    p.add_argument("--results", default="docs/results.md")
    p.add_argument("--config", default="configs.small", help="config module (importable)")
    p.add_argument("--datasets", default="pbmc68k_reduced,zeisel,cbmc,synthetic")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--max_cells", type=int, default=2000, help="cells scored per data set (0 = all)"
    )
    p.add_argument("--set", action="append", default=[], help="section.field=value override")
    return p


def main(argv, prog: str = "python -m eval study"):
    args = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    from sigjax.evaluation import results_markdown, run_study, summarize

    config = importlib.import_module(args.config).get_config()
    overrides = {**CPU_BUDGET, **parse_sets(args.set)}
    override(config, overrides)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = run_study(
        config,
        args.out,
        datasets=args.datasets.split(","),
        seeds=seeds,
        max_cells=args.max_cells or None,
    )
    summary = summarize(rows)
    pathlib.Path(args.out, "results.json").write_text(
        json.dumps({"rows": rows, "summary": summary})
    )
    text = results_markdown(
        summary,
        rows,
        command=f"{prog} {shlex.join(argv)}".strip(),
        config_text=(
            f"config: {args.config} with overrides\n"
            + "\n".join(f"  {k} = {v!r}" for k, v in overrides.items())
            + f"\nmodel: {json.dumps(config.model.to_dict())}\ncells scored per data set: at most "
            f"{args.max_cells or 'all'}"
        ),
    )
    pathlib.Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.results).write_text(text)
    print(text)


if __name__ == "__main__":  # The older spelling, `python -m eval.study`, still works.
    main(sys.argv[1:], prog="python -m eval.study")
