"""Markdown tables of docs/data/recipe/runs.jsonl: held-out scores per variant, data set and
attention (mean over seeds, seeds counted), PCA of the same cells beside them.

With --std, each model cell is "mean ± sample std over seeds (PCA mean)".

Run:
  python docs/probes/recipe_table.py docs/data/recipe/runs.jsonl [--variants=recipe,old] [--std]
"""

import argparse
import collections
import json
import statistics

METRICS = ("knn_purity", "nmi", "ari", "silhouette", "knn_accuracy")
# Rows run under another name with the same fields (recipe.py VARIANTS says so).
ALIASES = {"hvg500_len512": "recipe"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--variants", default="")
    parser.add_argument("--std", action="store_true", help="add the sample std over seeds")
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.path)]
    keep = args.variants.split(",") if args.variants else None
    groups = collections.defaultdict(list)
    for r in rows:
        r["variant"] = ALIASES.get(r["variant"], r["variant"])
        if keep is None or r["variant"] in keep:
            groups[r["variant"], r["dataset"], r["attention"]].append(r)
    head = " | ".join(f"{m} (PCA)" for m in METRICS)
    print(f"| variant | data set | attention | seeds | {head} | s/run |")
    print("|" + "---|" * (len(METRICS) + 5))
    order = sorted(groups, key=lambda k: (keep.index(k[0]) if keep else 0, k[0], k[1], k[2]))
    for key in order:
        rs = groups[key]

        def mean(source, metric, rs=rs):
            return sum(r[source][metric] for r in rs) / len(rs)

        def spread(metric, rs=rs):
            if not args.std:
                return ""
            values = [r["model"][metric] for r in rs]
            return f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else " ± -"

        cells = " | ".join(
            f"{mean('model', m):.3f}{spread(m)} ({mean('pca_train', m):.3f})" for m in METRICS
        )
        secs = sum(r["train_seconds"] for r in rs) / len(rs)
        seeds = ",".join(str(r["seed"]) for r in rs)
        print(f"| {key[0]} | {key[1]} | {key[2]} | {seeds} | {cells} | {secs:.0f} |")


if __name__ == "__main__":
    main()
