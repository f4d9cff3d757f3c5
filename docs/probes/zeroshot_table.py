"""Mean ± sample std over seeds of `eval zeroshot` records, as the markdown rows of docs/results.md.

  python docs/probes/zeroshot_table.py docs/data/zeroshot_small \
      sigmoid,sigmoid_seed1,sigmoid_seed2 softmax,softmax_seed1,softmax_seed2

Each argument after the folder is one group of record names (subfolders holding zeroshot.json).
With two groups, a line per data set lists the scores whose group means differ by more than the sum
of the two stds (the rule of `eval.study`: the mean ± std ranges do not overlap).
"""

import json
import pathlib
import sys

import numpy as np

SCORES = ("knn_accuracy", "knn_purity", "nmi", "ari", "silhouette", "clisi")


def main(folder: str, *groups: str) -> None:
    root = pathlib.Path(folder)
    print("| data set | embedding | seeds | " + " | ".join(SCORES) + " |")
    print("|---|---|---|" + "---|" * len(SCORES))
    tables, stats = {}, {}
    for group in groups:
        names = group.split(",")
        runs = [json.loads((root / n / "zeroshot.json").read_text()) for n in names]
        for row_set in zip(*(r["rows"] for r in runs), strict=True):
            if "sigjax" not in row_set[0]:
                continue
            name = row_set[0]["dataset"]
            values = np.array([[r["sigjax"][s] for s in SCORES] for r in row_set])
            mean, std = values.mean(0), values.std(0, ddof=1) if len(values) > 1 else 0 * values[0]
            stats.setdefault(name, []).append((runs[0]["attention"], mean, std))
            cells = " | ".join(f"{m:.3f} ± {d:.3f}" for m, d in zip(mean, std, strict=True))
            tables.setdefault(name, []).append(
                f"| {name} | {runs[0]['attention']} | {len(names)} | {cells} |"
            )
            # PCA of the set's own HVGs: no split, no seed; the same in every record up to float
            # noise (on the GPU, silhouette and cLISI differ by ~1e-8 between processes).
            assert all(
                np.allclose(
                    [r["pca_hvg"][s] for s in SCORES],
                    [row_set[0]["pca_hvg"][s] for s in SCORES],
                    atol=1e-6,
                )
                for r in row_set
            ), name
            pca = " | ".join(f"{row_set[0]['pca_hvg'][s]:.3f}" for s in SCORES)
            tables[name + "/pca"] = [f"| {name} | PCA of HVGs | | {pca} |"]
    for name in sorted(k for k in tables if "/" not in k):
        print("\n".join(tables[name] + tables[name + "/pca"]))
    for name, group_stats in stats.items():
        if len(group_stats) != 2:
            continue
        (a, ma, sa), (b, mb, sb) = group_stats
        apart = [
            f"{s} ({a} {'+' if d > 0 else '-'}{abs(d):.3f})"
            for s, d, beyond in zip(SCORES, ma - mb, np.abs(ma - mb) > sa + sb, strict=True)
            if beyond
        ]
        print(f"{name}: {a} vs {b} beyond the spread: {', '.join(apart) or 'none'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
