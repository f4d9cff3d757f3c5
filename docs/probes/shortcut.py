"""Probe: can a masked value be read off the visible tokens without any model?

For each data set, 15% of every held-out cell's tokens are masked. Two predictors, no model, fit
on the other cells (all of a cell's expressed genes are tokens here, no truncation):

- gene: P(bin | gene), the gene's bin histogram over the training cells (add-one smoothed).
- shortcut: gene identity, the gene's count prior P(count | gene) (training cells) and the cell's
  visible count-to-bin mapping: P(bin | gene, cell) = sum_c P(c | gene) P(bin | c, cell), where
  P(bin | c, cell) is the histogram of the bins of the cell's visible tokens with count c (or
  the nearest count present), mixed with 1% uniform.

Cross-entropy (nats) of each on the masked tokens, for bins with average ties (one bin per tied
count) and with random ties (scGPT); and, for regressed log-normalised values, the mean squared
error of the gene's mean value against the shortcut's (sum_c P(c | gene) * the cell's visible
value at count c, which gives away the cell's library size). One JSON line per data set.

Run:
  PYTHONPATH=$PWD python docs/probes/shortcut.py --out=docs/data/recipe/shortcut.jsonl
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.getcwd())
from sigjax.data import bin_values, load_dataset  # noqa: E402

N_BINS = 51
MAX_COUNT = 64  # Counts above are pooled into one prior cell (rare; keeps the prior small).


def cells_of(adata):
    x = sp.csr_matrix(adata.X)
    totals = np.asarray(x.sum(1)).ravel()
    for r in range(x.shape[0]):
        lo, hi = x.indptr[r], x.indptr[r + 1]
        cols, counts = x.indices[lo:hi], np.rint(x.data[lo:hi]).astype(np.int64)
        keep = counts > 0
        yield cols[keep], counts[keep], totals[r]


def probe(name: str, seed: int = 0) -> dict:
    adata = load_dataset(name)
    rng = np.random.default_rng(seed)
    cells = list(cells_of(adata))
    held = rng.random(len(cells)) < 0.3
    g = adata.n_vars
    out = {"dataset": name}
    for ties in ("average", "random"):
        tie_rng = np.random.default_rng(seed + 1)
        binned = [
            bin_values(c.astype(float), N_BINS, tie_rng if ties == "random" else None)
            for _, c, _ in cells
        ]
        gene_bins = np.ones((g, N_BINS))  # Add-one smoothing.
        gene_counts = np.full((g, MAX_COUNT + 1), 1e-3)
        for (cols, counts, _), b, h in zip(cells, binned, held, strict=True):
            if not h:
                np.add.at(gene_bins, (cols, b.astype(int)), 1)
                np.add.at(gene_counts, (cols, np.minimum(counts, MAX_COUNT)), 1)
        gene_bins[:, 0] = 0
        p_gene = gene_bins / gene_bins.sum(1, keepdims=True)
        p_count = gene_counts / gene_counts.sum(1, keepdims=True)
        ce_gene, ce_short, n = 0.0, 0.0, 0
        se_mean, se_short = 0.0, 0.0
        mask_rng = np.random.default_rng(seed + 2)
        gene_logsum = np.zeros(g)
        gene_n = np.zeros(g)
        for (cols, counts, total), h in zip(cells, held, strict=True):
            if not h:
                np.add.at(gene_logsum, cols, np.log1p(counts / total * 1e4))
                np.add.at(gene_n, cols, 1)
        gene_logmean = gene_logsum / np.maximum(gene_n, 1)
        for (cols, counts, total), b, h in zip(cells, binned, held, strict=True):
            if not h or len(cols) < 4:
                continue
            m = mask_rng.random(len(cols)) < 0.15
            if not m.any() or m.all():
                continue
            vis_c, vis_b = np.minimum(counts[~m], MAX_COUNT), b[~m].astype(int)
            present = np.unique(vis_c)
            # The cell's visible count -> bin histogram, for every count 0..MAX_COUNT (nearest).
            table = np.zeros((MAX_COUNT + 1, N_BINS))
            for c in present:
                table[c] = np.bincount(vis_b[vis_c == c], minlength=N_BINS)
            nearest = present[np.abs(np.arange(MAX_COUNT + 1)[:, None] - present[None]).argmin(1)]
            table = table[nearest]
            table = table / table.sum(1, keepdims=True)
            uniform = np.full(N_BINS, 1.0 / (N_BINS - 1))
            uniform[0] = 0
            tgt = b[m].astype(int)
            p_s = p_count[cols[m]] @ table
            p_s = 0.99 * p_s + 0.01 * uniform
            ce_short -= np.log(p_s[np.arange(len(tgt)), tgt]).sum()
            ce_gene -= np.log(p_gene[cols[m], tgt]).sum()
            n += len(tgt)
            if ties == "average":  # Regression of log-normalised values (ties play no part).
                logv = np.log1p(counts / total * 1e4)
                # The cell's level for each count is visible (log1p(c / total * 1e4)).
                levels = np.log1p(np.arange(MAX_COUNT + 1) / total * 1e4)
                pred = p_count[cols[m]] @ levels
                se_short += np.square(pred - logv[m]).sum()
                se_mean += np.square(gene_logmean[cols[m]] - logv[m]).sum()
        out[f"ce_gene_{ties}"] = ce_gene / n
        out[f"ce_shortcut_{ties}"] = ce_short / n
        if ties == "average":
            out["mse_gene_mean_log"] = se_mean / n
            out["mse_shortcut_log"] = se_short / n
        out["masked_tokens"] = n
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="pbmc68k_reduced,zeisel,cbmc")
    parser.add_argument("--out", default="docs/data/recipe/shortcut.jsonl")
    args = parser.parse_args()
    for name in args.datasets.split(","):
        row = probe(name)
        row["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
