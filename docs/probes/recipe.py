"""Probe: which training recipe gives held-out cell embeddings that match the PCA baseline?

Trains small CellEncoders in-process (no checkpoints) on 70% of a labelled data set's cells and
scores the embeddings of the other 30%, which the model never saw, next to PCA of the same cells.
Every variant is a set of config overrides on configs/small.py; sigmoid and softmax runs differ
only in model.attention. One JSON line per (variant, data set, attention, seed) goes to --out.

PCA baseline (per data set and seed): counts normalised to 1e4, log1p, 2000 (or genes - 1)
seurat HVGs and 50 PCs, all fit on the training cells, the held-out cells projected ("pca_train",
the fair analogue of the model, also used for kNN accuracy), and PCA fit on the held-out cells
themselves ("pca_heldout", what `eval score` reports for a file).

Run (from the repository root, 2-core CPU):
  PYTHONPATH=$PWD python docs/probes/recipe.py --variants=old,recipe --datasets=pbmc68k_reduced \
    --attentions=sigmoid,softmax --seeds=0 --out=docs/data/recipe/runs.jsonl
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, os.getcwd())
from configs import small  # noqa: E402
from sigjax.data import CellLoader, Vocab, load_dataset, tokenize_with  # noqa: E402
from sigjax.data._tokenize import select_genes  # noqa: E402
from sigjax.evaluation._embed import embed_cells  # noqa: E402
from sigjax.evaluation._score import score_embedding  # noqa: E402
from sigjax.model import CellEncoder, EncoderConfig  # noqa: E402
from sigjax.training._objective import objective_loss  # noqa: E402
from sigjax.training._steps import group_norms, make_optimizer  # noqa: E402

HELD_OUT = 0.3
# configs/small.py as it was on main (before the recipe became its default); every variant is
# these fields plus its overrides, so "old" stays the old model whatever small.py holds.
OLD = {
    # Before data.input_values existed, X was read as counts (LEGACY_VALUES); the bundled sets
    # hold counts, so "auto" would detect the same, but this keeps the old reading by construction.
    "data.input_values": "counts",
    "data.gene_selection": "top_expressed",
    "data.bin_ties": "average",
    "model.expression_weight": 0.0,
    "model.expression_center": False,
    "model.masked_weight": 1.0,
    "model.attention_output_norm": False,
    "model.pooling": "cls",
    "model.readout": "pooled",  # Not a training field; "decoder" would need the decoder.
    "train.learning_rate": 1e-3,
}
# configs/small.py's own old max_len (now 512 there); recipe.py's variants start from it, while
# recipe_grads.py keeps stress_tiny's 512, as when its rows ran.
OLD_SMALL = {"data.max_len": 256}
# First try (v0): HVGs, random ties, the expression decoder beside the masked loss, hybrid norm,
# mean pooling, LR 1e-3; its ablations are the v0_* variants.
RECIPE_V0 = {
    "data.gene_selection": "highly_variable",
    "data.n_top_genes": 1000,
    "data.bin_ties": "random",
    "model.expression_weight": 1.0,
    "model.attention_output_norm": True,
    "model.pooling": "mean",
}
# v0 with the expression loss centred over the batch, the masked loss at 0.1, LR 3e-3.
RECIPE_HVG1000_LEN256 = {
    **RECIPE_V0,
    "model.expression_center": True,
    "model.masked_weight": 0.1,
    "train.learning_rate": 3e-3,
}
# The recipe: as above with 500 HVGs and max_len 512, so that (nearly) every cell carries all of
# its expressed HVGs (at 1000 HVGs / 256 tokens most Zeisel and CBMC cells were cut, and the genes
# below the cut counted as unexpressed in the expression targets).
RECIPE = {**RECIPE_HVG1000_LEN256, "data.n_top_genes": 500, "data.max_len": 512}
VARIANTS = {
    "old": {},  # configs/small.py as on main.
    "v0": RECIPE_V0,
    "v0_expression_only": {**RECIPE_V0, "model.masked_weight": 0.0},
    "v0_lr3e-3": {**RECIPE_V0, "train.learning_rate": 3e-3},
    "v0_continuous": {**RECIPE_V0, "data.value_encoding": "continuous"},
    "v0_center": {**RECIPE_V0, "model.expression_center": True},
    "v0_center_lr3e-3": {
        **RECIPE_V0,
        "model.expression_center": True,
        "train.learning_rate": 3e-3,
    },
    "v0_center_only_lr3e-3": {
        **RECIPE_V0,
        "model.expression_center": True,
        "model.masked_weight": 0.0,
        "train.learning_rate": 3e-3,
    },
    "v0_center_only_lr1e-2": {
        **RECIPE_V0,
        "model.expression_center": True,
        "model.masked_weight": 0.0,
        "train.learning_rate": 1e-2,
    },
    "recipe_pilot": RECIPE_HVG1000_LEN256,  # Its first run (PBMC, sigmoid, seed 0).
    "recipe_hvg1000_len256": RECIPE_HVG1000_LEN256,
    "recipe": RECIPE,
    # Ablations: the recipe with one choice undone or changed.
    "no_expression": {**RECIPE, "model.expression_weight": 0.0, "model.masked_weight": 1.0},
    "no_center": {**RECIPE, "model.expression_center": False},
    "top_expressed": {**RECIPE, "data.gene_selection": "top_expressed"},
    "all_expressed": {**RECIPE, "data.gene_selection": "all_expressed"},
    "average_ties": {**RECIPE, "data.bin_ties": "average"},
    "continuous": {**RECIPE, "data.value_encoding": "continuous"},
    "no_out_norm": {**RECIPE, "model.attention_output_norm": False},
    "cls": {**RECIPE, "model.pooling": "cls"},
    "hvg1000": {**RECIPE, "data.n_top_genes": 1000},
    "steps600": {**RECIPE, "train.num_steps": 600},
    # The recipe's first runs (Zeisel, CBMC, sigmoid, seed 0): the same fields as "recipe".
    "hvg500_len512": RECIPE,
    # Levers past the recipe (branch recipe2): longer training, a wider model, more HVGs (with
    # max_len to hold a cell's expressed ones), the masked loss lower, another learning rate.
    "steps1000": {**RECIPE, "train.num_steps": 1000},
    "width128": {**RECIPE, "model.embed_dim": 128, "model.mlp_dim": 512},
    "wide": {**RECIPE, "model.embed_dim": 128, "model.mlp_dim": 512, "model.num_layers": 4},
    "hvg1000_len1024": {**RECIPE, "data.n_top_genes": 1000, "data.max_len": 1024},
    "hvg2000_len2048": {**RECIPE, "data.n_top_genes": 2000, "data.max_len": 2048},
    "masked0.03": {**RECIPE, "model.masked_weight": 0.03},
    "masked0": {**RECIPE, "model.masked_weight": 0.0},
    "lr1e-3": {**RECIPE, "train.learning_rate": 1e-3},
    "lr6e-3": {**RECIPE, "train.learning_rate": 6e-3},
    "steps600_lr6e-3": {**RECIPE, "train.num_steps": 600, "train.learning_rate": 6e-3},
    "steps600_masked0": {**RECIPE, "train.num_steps": 600, "model.masked_weight": 0.0},
    "steps600_cls": {**RECIPE, "train.num_steps": 600, "model.pooling": "cls"},
    "batch32": {**RECIPE, "data.batch_size": 32},
    # Session of 2026-12-02 (CBMC sees 1.6 epochs in 600 steps of 16 cells; PBMC ~20): more steps,
    # larger batches, and the input values (continuous log1p, deterministic bins).
    "steps1500": {**RECIPE, "train.num_steps": 1500},
    "steps2000": {**RECIPE, "train.num_steps": 2000},
    "batch32_steps1000": {**RECIPE, "data.batch_size": 32, "train.num_steps": 1000},
    "steps600_continuous": {**RECIPE, "train.num_steps": 600, "data.value_encoding": "continuous"},
    "steps1500_continuous": {
        **RECIPE,
        "train.num_steps": 1500,
        "data.value_encoding": "continuous",
    },
    "steps600_average_ties": {**RECIPE, "train.num_steps": 600, "data.bin_ties": "average"},
    "steps1500_lr1e-3": {**RECIPE, "train.num_steps": 1500, "train.learning_rate": 1e-3},
    # Issue 12 (2026-12-02): an InfoNCE term between two masked views of each cell, beside the
    # PCA-like expression loss (weight 1.0 and 0.3; temperature 0.1, its default).
    "contrast": {**RECIPE, "train.num_steps": 600, "model.contrastive_weight": 1.0},
    "contrast03": {**RECIPE, "train.num_steps": 600, "model.contrastive_weight": 0.3},
    # Issue 12 (2026-12-02, fourth session): more of each cell masked (the default is 15%), so
    # that the expression decoder must rebuild more of the cell from its embedding.
    "steps600_mask30": {**RECIPE, "train.num_steps": 600, "model.mask_prob": 0.3},
    "steps600_mask50": {**RECIPE, "train.num_steps": 600, "model.mask_prob": 0.5},
    # Issue 12 (2026-12-02, fifth session): CBMC with twice the HVGs (PCA uses 2,000); max_len
    # doubled to hold a cell's expressed ones. A no-op there: the bundled CBMC has 500 genes.
    "steps600_hvg1000_len1024": {
        **RECIPE,
        "train.num_steps": 600,
        "data.n_top_genes": 1000,
        "data.max_len": 1024,
    },
}


def make_config(overrides: dict, attention: str, seed: int):
    c = small.get_config()
    c.model.attention = attention
    c.model.implementation = "xla"
    c.seed = seed
    c.data.seed = seed
    c.train.progress_bar = False
    for key, value in {**OLD_SMALL, **OLD, **overrides}.items():
        *path, leaf = key.split(".")
        node = c
        for p in path:
            node = node[p]
        node[leaf] = value
    return c


_DATA = {}


def data_split(name: str, seed: int):
    """(adata, train rows, held-out rows) with labelled cells only; cached."""
    if name not in _DATA:
        adata = load_dataset(name)
        _DATA[name] = adata[adata.obs["cell_type"].notna().to_numpy()].copy()
    adata = _DATA[name]
    order = np.random.default_rng([seed, 12]).permutation(adata.n_obs)
    n_out = int(round(adata.n_obs * HELD_OUT))
    return adata, np.sort(order[n_out:]), np.sort(order[:n_out])


_PCA = {}


def pca_scores(name: str, seed: int) -> dict:
    """PCA baseline scores of the held-out cells: fit on train and projected, and fit on them."""
    if (name, seed) in _PCA:
        return _PCA[name, seed]
    import scanpy as sc

    adata, train, held = data_split(name, seed)
    work = adata.copy()
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    labels = work.obs["cell_type"].astype(str).to_numpy()
    tr = work[train].copy()
    sc.pp.highly_variable_genes(tr, n_top_genes=min(2000, tr.n_vars - 1), flavor="seurat")
    hv = tr.var["highly_variable"].to_numpy()
    x_tr = np.asarray(tr.X[:, hv].todense())
    x_all = np.asarray(work.X[:, hv].todense())
    mean = x_tr.mean(0)
    n = min(50, len(train) - 1, int(hv.sum()) - 1)
    # PCA fit on the training cells (centred, as scanpy's pca), held-out cells projected.
    _, _, vt = np.linalg.svd(x_tr - mean, full_matrices=False)
    proj = (x_all - mean) @ vt[:n].T
    out = {
        "pca_train": score_embedding(proj[held], labels[held], proj[train], labels[train]),
    }
    held_ad = adata[held].copy()
    from sigjax.evaluation._score import pca_baseline

    pca_baseline(held_ad)
    out["pca_heldout"] = score_embedding(held_ad.obsm["X_pca_hvg"], labels[held])
    _PCA[name, seed] = out
    return out


def train(config, cells, vocab_size: int, grad_log: bool = False):
    """Trains a CellEncoder on `cells`; returns (model, seconds, last losses, MLP grad norms)."""
    model = CellEncoder(EncoderConfig.from_config(config, vocab_size), rngs=nnx.Rngs(config.seed))
    graphdef, params = nnx.split(model)
    tx, _ = make_optimizer(config.train)
    opt_state = tx.init(params)
    mcfg = config.model

    @jax.jit
    def step(params, opt_state, batch, key):
        def loss_fn(p):
            return objective_loss(nnx.merge(graphdef, p), batch, key)  # Weights: model.config.

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        norms = group_norms(grads, mcfg.num_layers)
        return optax.apply_updates(params, updates), opt_state, loss, aux, norms

    loader = CellLoader(
        cells, batch_size=config.data.batch_size, seed=config.data.seed, max_len=config.data.max_len
    )
    base = jax.random.key(config.seed)
    start = time.time()
    history, norms_log = [], []
    for i in range(config.train.num_steps):
        batch = {k: jnp.asarray(v) for k, v in next(loader).items() if k != "labels"}
        params, opt_state, loss, aux, norms = step(
            params, opt_state, batch, jax.random.fold_in(base, i)
        )
        if i >= config.train.num_steps - 20:
            history.append(
                [float(loss), float(aux["masked"]), float(aux["expression"])]
                + ([float(aux["contrastive"])] if "contrastive" in aux else [])
            )
            if grad_log:
                norms_log.append({k: float(v) for k, v in norms.items()})
    seconds = time.time() - start
    return nnx.merge(graphdef, params), seconds, np.mean(history, axis=0).tolist(), norms_log


def run_one(variant: str, name: str, attention: str, seed: int) -> dict:
    config = make_config(VARIANTS[variant], attention, seed)
    adata, train_rows, held_rows = data_split(name, seed)
    genes = select_genes(
        adata[train_rows],
        config.data.get("gene_selection", "top_expressed"),
        config.data.get("n_top_genes", 1000),
        config.data.input_values,
    )
    vocab = Vocab.from_genes(genes)
    cells = tokenize_with(config.data, adata, vocab)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    model, seconds, losses, _ = train(config, cells.subset(train_rows), vocab.size)
    emb_tr = embed_cells(model, config, cells.subset(train_rows), readout="pooled")
    emb_out = embed_cells(model, config, cells.subset(held_rows), readout="pooled")
    scores = score_embedding(emb_out, labels[held_rows], emb_tr, labels[train_rows])
    # Diagnostic (not the embedding `eval embed` gives): the decoder's predicted expression of
    # every vocabulary gene, W e_c . gene_embed_g, a linear map of the embedding that weighs its
    # directions by what they reconstruct (kNN distances are not invariant to that map).
    decoded = query = None
    if config.model.expression_weight > 0:
        dec_tr, dec_out = (
            np.asarray(model.predict_expression(jnp.asarray(e))) for e in (emb_tr, emb_out)
        )
        decoded = score_embedding(dec_out, labels[held_rows], dec_tr, labels[train_rows])
        # The decoder's query W e_c alone (E dims): the same map without the gene table.
        q_tr, q_out = (
            np.asarray(model.expression_query(jnp.asarray(e))) for e in (emb_tr, emb_out)
        )
        query = score_embedding(q_out, labels[held_rows], q_tr, labels[train_rows])
    # The library's decoder readout (`model.readout="decoder"`, from 2026-12-02): the embedding
    # mapped so that its distances are the decoded profile's (genes only); `model` stays the
    # pooled embedding, whatever the config's readout.
    readout = None
    if config.model.expression_weight > 0:
        r_tr, r_out = (
            embed_cells(model, config, cells.subset(rows), readout="decoder")
            for rows in (train_rows, held_rows)
        )
        readout = score_embedding(r_out, labels[held_rows], r_tr, labels[train_rows])
    return {
        "variant": variant,
        "dataset": name,
        "attention": attention,
        "seed": seed,
        "overrides": VARIANTS[variant],
        "train_seconds": round(seconds, 1),
        # Mean of the last 20 steps: total, masked, expression (and contrastive, from 2026-12-02).
        "final_loss": losses,
        "genes": vocab.size - 3,
        "cells_train": len(train_rows),
        "cells_heldout": len(held_rows),
        "model": scores,
        "model_decoded": decoded,
        "model_query": query,
        "model_readout": readout,
        **pca_scores(name, seed),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="recipe")
    parser.add_argument("--datasets", default="pbmc68k_reduced,zeisel,cbmc")
    parser.add_argument("--attentions", default="sigmoid,softmax")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", default="docs/data/recipe/runs.jsonl")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    for variant in args.variants.split(","):
        for name in args.datasets.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                for attention in args.attentions.split(","):
                    row = run_one(variant, name, attention, seed)
                    row.update(
                        commit=commit,
                        machine=os.environ.get("RECIPE_MACHINE")
                        or f"2-core CPU ({platform.machine()})",
                        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    )
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    m, p = row["model"], row["pca_train"]
                    print(
                        f"{variant:14s} {name:16s} {attention:8s} s{seed} "
                        f"{row['train_seconds']:6.1f}s purity {m['knn_purity']:.3f} "
                        f"(pca {p['knn_purity']:.3f}/"
                        f"{row['pca_heldout']['knn_purity']:.3f}) nmi {m['nmi']:.3f} "
                        f"(pca {p['nmi']:.3f}/{row['pca_heldout']['nmi']:.3f}) "
                        f"acc {m['knn_accuracy']:.3f} (pca {p['knn_accuracy']:.3f}) "
                        f"loss {row['final_loss']}"
                        + (
                            f" decoded purity {row['model_decoded']['knn_purity']:.3f} "
                            f"nmi {row['model_decoded']['nmi']:.3f}"
                            if row["model_decoded"]
                            else ""
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
