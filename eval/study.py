"""The sigmoid-vs-softmax study (issue 5): every data set x {sigmoid, softmax} x seeds.

  nice -n 10 python -m eval.study --out=runs/study --results=docs/results.md

Trains `configs/small.py` with the CPU budget below (override with --set section.field=value),
scores every run and writes the summary (mean ± std over seeds, relative difference) to --results.
Finished runs are skipped: rerun the same command to resume. Logic: sigjax/evaluation/_study.py.
"""

import argparse
import ast
import importlib
import json
import logging
import pathlib
import shlex
import sys

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


def apply(config, key: str, value) -> None:
    *path, field = key.split(".")
    node = config
    for part in path:
        node = node[part]
    if field not in node:
        raise ValueError(f"--set: got unknown field {key!r}; expected a field of the config")
    node[field] = value


def main(argv):
    p = argparse.ArgumentParser(prog="python -m eval.study")
    p.add_argument("--out", default="runs/study")
    p.add_argument("--results", default="docs/results.md")
    p.add_argument("--config", default="configs.small", help="config module (importable)")
    p.add_argument("--datasets", default="pbmc68k_reduced,zeisel,cbmc,synthetic")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--max_cells", type=int, default=2000, help="cells scored per data set (0 = all)"
    )
    p.add_argument("--set", action="append", default=[], help="section.field=value override")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)
    from sigjax.evaluation import results_markdown, run_study, summarize

    config = importlib.import_module(args.config).get_config()
    overrides = dict(CPU_BUDGET)
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    for key, value in overrides.items():
        apply(config, key, value)
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
    command = "python -m eval.study " + shlex.join(argv)
    text = results_markdown(
        summary,
        rows,
        command=command.strip(),
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


if __name__ == "__main__":
    main(sys.argv[1:])
