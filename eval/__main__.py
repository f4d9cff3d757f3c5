"""python -m eval embed|score|compare|stability|kernels|demo ... (see `python -m eval CMD -h`)."""

import argparse
import json
import logging
import sys


def main(argv):
    if argv and argv[0] == "kernels":
        from sigjax.evaluation import kernel_bench

        return kernel_bench.main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m eval")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed", help="embed every cell of an .h5ad with a trained run")
    e.add_argument("--workdir", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--batch_size", type=int, default=None)
    s = sub.add_parser("score", help="score an embedding against cell-type labels")
    s.add_argument("--data", required=True)
    s.add_argument("--labels", required=True)
    s.add_argument("--embedding", default="X_sigjax")
    c = sub.add_parser("compare", help="runs side by side: table and plots")
    c.add_argument("runs", nargs="+")
    c.add_argument("--out", required=True)
    st = sub.add_parser("stability", help="gradient norm and loss of runs, with a summary")
    st.add_argument("runs", nargs="+")
    st.add_argument("--out", default=".")
    d = sub.add_parser("demo", help="sigmoid vs softmax `small` on bundled PBMC (CPU)")
    d.add_argument("--out", default="runs/demo")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("sigjax").setLevel(logging.INFO)
    import sigjax.evaluation as ev

    if args.cmd == "embed":
        import anndata as ad

        from sigjax.data import load_anndata

        adata = load_anndata(args.data)
        out, _ = ev.embed_anndata(args.workdir, adata, args.batch_size)
        ad.AnnData.write_h5ad(out, args.out)
        print(f"wrote {args.out} with obsm['{ev.EMBEDDING_KEY}'] {out.obsm[ev.EMBEDDING_KEY].shape}")
    elif args.cmd == "score":
        print(json.dumps(ev.score_file(args.data, args.labels, args.embedding), indent=2))
    elif args.cmd == "compare":
        ev.compare_runs(args.runs, args.out)
    elif args.cmd == "stability":
        ev.stability_report(args.runs, args.out)
    elif args.cmd == "demo":
        ev.run_demo(args.out)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
