"""Probe: are sigmoid's MLPs alive under a recipe? configs/stress_tiny.py (no clipping, LR 1e-2).

The variant's data and model fields (docs/probes/recipe.py) on stress_tiny; its train fields
are ignored, so every run has stress_tiny's LR 1e-2, no clipping and 150 steps.

Trains stress_tiny with the given variant's overrides (docs/probes/recipe.py VARIANTS), sigmoid
and softmax, and reports each block's median MLP and attention gradient norm over the last 20
steps, and sigmoid/softmax ratios. One JSON line per variant to --out.

Run:
  PYTHONPATH=$PWD python docs/probes/recipe_grads.py --variants=old,recipe \
    --out=docs/data/recipe/grads.jsonl
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.getcwd())
from configs import stress_tiny  # noqa: E402
from docs.probes.recipe import OLD, VARIANTS, train  # noqa: E402
from sigjax.data import Vocab, load_from_config, tokenize_with  # noqa: E402
from sigjax.data._tokenize import select_genes  # noqa: E402


def run(variant: str, attention: str) -> dict:
    c = stress_tiny.get_config()
    c.model.attention = attention
    c.model.implementation = "xla"
    # The variant's data and model fields; train.* stays stress_tiny's (LR 1e-2, no clipping).
    fields = {k: v for k, v in {**OLD, **VARIANTS[variant]}.items() if not k.startswith("train.")}
    for key, value in fields.items():
        *path, leaf = key.split(".")
        node = c
        for p in path:
            node = node[p]
        node[leaf] = value
    adata = load_from_config(c.data)
    genes = select_genes(adata, c.data.gene_selection, c.data.n_top_genes, c.data.input_values)
    vocab = Vocab.from_genes(genes)
    cells = tokenize_with(c.data, adata, vocab)
    _, seconds, losses, norms = train(c, cells, vocab.size, grad_log=True)
    med = {k: float(np.median([n[k] for n in norms])) for k in norms[0]}
    return {"seconds": round(seconds, 1), "final_loss": losses, "grad_norm_median": med}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="old,recipe")
    parser.add_argument("--out", default="docs/data/recipe/grads.jsonl")
    args = parser.parse_args()
    for variant in args.variants.split(","):
        rows = {a: run(variant, a) for a in ("sigmoid", "softmax")}
        sig, soft = rows["sigmoid"]["grad_norm_median"], rows["softmax"]["grad_norm_median"]
        ratio = {k: sig[k] / max(soft[k], 1e-30) for k in sig if "/mlp" in k}
        row = {
            "variant": variant,
            "config": "configs/stress_tiny.py",
            "overrides": VARIANTS[variant],
            **rows,
            "mlp_ratio_sigmoid_over_softmax": ratio,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
