"""python -m eval SUBCOMMAND ... (`python -m eval -h` lists them; `python -m eval CMD -h`)."""

import argparse
import json
import logging
import pathlib
import sys
import time

# Subcommands with their own command line: `python -m eval NAME ARGS` hands ARGS to NAME's main.
DELEGATED = {
    "study": "the sigmoid-vs-softmax study over data sets and seeds (docs/results.md)",
    "stability": "gradient norms, update ratios and the stable runs of runs or a grid",
    "kernels": "GPU kernel benchmark and block-size tuning (docs/benchmarks.md)",
    "train-speed": "whole training steps, sigmoid vs softmax: step time and MFU (docs/training.md)",
}


def _delegate(cmd: str, argv):
    prog = f"python -m eval {cmd}"
    if cmd == "study":
        from eval import study

        return study.main(argv, prog=prog)
    if cmd == "stability":
        from eval import stability

        return stability.main(argv, prog=prog)
    if cmd == "train-speed":
        from eval import train_speed

        return train_speed.main(argv, prog=prog)
    from eval.kernels import cli

    return cli.main(argv)


def parse(argv):
    from sigjax.data._values import VALUES

    p = argparse.ArgumentParser(prog="python -m eval")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed", help="embed every cell of an .h5ad with a trained run")
    e.add_argument("--workdir", required=True)
    e.add_argument("--data", required=True)
    out = e.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="the .h5ad written: --data plus obsm['X_sigjax']")
    out.add_argument("--inplace", action="store_true", help="write into --data (atomically)")
    e.add_argument(
        "--values",
        choices=VALUES,
        default=None,
        help="what the values are (normalized: TPM, CPM); default: the run's data.input_values",
    )
    e.add_argument("--batch_size", type=int, default=None)
    e.add_argument("--layer", default="", help="take values from this layer instead of X")
    e.add_argument("--use_raw", action="store_true", help="take values and genes from .raw")
    e.add_argument("--gene_column", default="", help="var column with the gene ids to match")
    e.add_argument(
        "--readout",
        choices=("pooled", "decoder"),
        default=None,
        help="the embedding: pooled hidden state, or in the expression decoder's geometry; "
        "default: the run's model.readout",
    )
    s = sub.add_parser("score", help="score an embedding against cell-type labels (+ PCA baseline)")
    s.add_argument("--data", required=True)
    s.add_argument("--labels", required=True)
    s.add_argument("--embedding", default="X_sigjax")
    s.add_argument("--no_umap", action="store_true")
    s.add_argument(
        "--heldout",
        default=None,
        metavar="WORKDIR",
        help="score only the cells this run held out (the file holds its training cells)",
    )
    c = sub.add_parser("compare", help="runs side by side: table and plots")
    c.add_argument("runs", nargs="+")
    c.add_argument("--out", required=True)
    c.add_argument("--no_embed", action="store_true", help="do not embed runs without scores.json")
    z = sub.add_parser("zeroshot", help="embed labelled sets with a pretrained run, vs PCA")
    z.add_argument("--workdir", required=True, help="the pretrained run (e.g. a pooled one)")
    z.add_argument(
        "--datasets",
        default="pbmc68k_reduced,scmark,zeisel,cbmc",  # sigjax.evaluation.ZEROSHOT_DEFAULT.
        help="comma-separated labelled sets (sigjax.data.DATASETS)",
    )
    z.add_argument("--source", default=None, help="folder of package archives (offline)")
    z.add_argument("--max_cells", type=int, default=None, help="cells per set (default all)")
    z.add_argument("--folds", type=int, default=5, help="folds of the kNN accuracy")
    z.add_argument("--out", default=None, help="folder of zeroshot.json/.md (default workdir)")
    zs = sub.add_parser(
        "zeroshot-summary", help="mean ± std over seeds of zeroshot records, sigmoid vs softmax"
    )
    zs.add_argument("records", nargs="+", help="folders holding zeroshot.json (one per run)")
    zs.add_argument("--out", default=None, help="also write the table (.md) and summary (.json)")
    k = sub.add_parser("pack-pooled", help="the pooled corpus as one compact .h5ad (offline use)")
    k.add_argument("--out", required=True, help="the .h5ad written; train with data.path=OUT")
    k.add_argument("--datasets", default="", help="comma-separated sets (default: POOLED_DEFAULT)")
    k.add_argument("--source", default=None, help="folder of package archives (offline)")
    k.add_argument("--min_cells", type=int, default=1, help="genes in >= this many cells")
    k.add_argument("--level", type=int, default=9, help="gzip level, 1 (fast) to 9 (smallest)")
    d = sub.add_parser("demo", help="sigmoid vs softmax `configs/small.py` on bundled PBMC (CPU)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--config", default="configs.small", help="config module or file (configs/x.py)")
    for name, text in DELEGATED.items():  # Listed here; parsed by their own main (`CMD -h`).
        sub.add_parser(name, help=text + f"; see `python -m eval {name} -h`", add_help=False)
    return p.parse_args(argv)


def main(argv):
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sigjax").setLevel(logging.INFO)
    logging.getLogger("absl").setLevel(logging.ERROR)  # Orbax warns about read-only restores.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # No-TPU log line.
    import sigjax.evaluation as ev

    if args.cmd == "embed":
        ev.embed_file(
            args.workdir,
            args.data,
            args.out,
            inplace=args.inplace,
            values=args.values,
            batch_size=args.batch_size,
            layer=args.layer,
            use_raw=args.use_raw,
            gene_column=args.gene_column,
            readout=args.readout,
        )
    elif args.cmd == "score":
        print(
            json.dumps(
                ev.score_file(
                    args.data, args.labels, args.embedding, not args.no_umap, args.heldout
                ),
                indent=2,
            )
        )
    elif args.cmd == "compare":
        ev.compare_runs(args.runs, args.out, embed=not args.no_embed)
    elif args.cmd == "zeroshot":
        ev.zeroshot(
            args.workdir,
            args.datasets,
            source=args.source,
            max_cells=args.max_cells,
            folds=args.folds,
            out=args.out,
        )
    elif args.cmd == "zeroshot-summary":
        summary = ev.zeroshot_summary(args.records)
        table = ev.zeroshot_summary_markdown(summary)
        print(table, end="")
        if args.out:
            out = pathlib.Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.with_suffix(".md").write_text(table)
            out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    elif args.cmd == "pack-pooled":
        from sigjax.data import pack_pooled

        start = time.perf_counter()
        summary = pack_pooled(
            args.out, args.datasets, source=args.source, min_cells=args.min_cells, level=args.level
        )
        print(json.dumps({**summary, "seconds": round(time.perf_counter() - start, 1)}, indent=2))
    elif args.cmd == "demo":
        from eval._overrides import load_config

        ev.run_demo(load_config(args.config), args.out)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
