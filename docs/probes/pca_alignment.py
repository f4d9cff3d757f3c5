"""How close is a run's cell embedding to PCA of the same cells? (issue 12: why "at PCA's level")

The recipe's expression loss is the mean squared error of a linear decoder's profile against the
cell's log-normalised expression, centred gene by gene over the batch: the objective PCA
minimises, with a nonlinear encoder in front. If training drives the decoder readout towards
PCA's geometry, its scores can only approach PCA's. This measures that on a run's held-out
cells: linear CKA (Kornblith et al. 2019) between the run's embedding and PCA of log-normalised
HVGs (`pca_baseline`, as the scores use it), and the share of each cell's 15 nearest neighbours
that the two embeddings have in common. For scale, the same for PCA with 20 against 50
components of the same genes, and each checkpoint of the run from initialisation on.

  PYTHONPATH=$PWD python docs/probes/pca_alignment.py RUN_DIR [RUN_DIR ...]
"""

import pathlib
import sys

import numpy as np

K = 15


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)
    cross = np.linalg.norm(x.T @ y) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def shared_neighbours(x: np.ndarray, y: np.ndarray, k: int = K) -> float:
    from sigjax.evaluation._score import _neighbors  # The scores' own neighbour search.

    a, b = (_neighbors(z, k).indices[:, 1:] for z in (x, y))
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(a, b, strict=True)]))


def main(workdirs):
    from sigjax.data import load_from_config, split_rows, tokenize_with
    from sigjax.evaluation._embed import embed_cells
    from sigjax.evaluation._score import BASELINE_KEY, pca_baseline
    from sigjax.training import build_model, load_model

    for workdir in workdirs:
        _, config, vocab = load_model(workdir)
        adata = load_from_config(config.data)
        tokens = tokenize_with(config.data, adata, vocab)
        _, rows = split_rows(config.data, tokens)
        values = config.data.get("input_values") or "auto"
        pca_baseline(adata, values=values)
        pca = np.asarray(adata.obsm[BASELINE_KEY])[rows]
        work = adata.copy()  # Reference: PCA with fewer components of the same HVGs.
        pca_baseline(work, n_comps=20, values=values)
        pca20 = np.asarray(work.obsm[BASELINE_KEY])[rows]
        print(
            f"{workdir} ({config.data.dataset}, {config.model.attention}, seed {config.seed}): "
            f"{len(rows)} held-out cells, PCA {pca.shape[1]} components"
        )
        print(
            f"  reference, PCA 20 vs 50 components: CKA {linear_cka(pca20, pca):.3f}, "
            f"shared {K}-NN {shared_neighbours(pca20, pca):.3f}"
        )
        steps = sorted(
            int(d.name)
            for d in (pathlib.Path(workdir) / "checkpoints").iterdir()
            if d.name.isdigit()
        )
        for step in [0, *steps]:
            model = build_model(config, vocab.size) if step == 0 else load_model(workdir, step)[0]
            line = [f"  step {step:>5}" + (" (init)" if step == 0 else "")]
            for readout in ("decoder", "pooled"):
                emb = np.asarray(embed_cells(model, config, tokens.subset(rows), readout=readout))
                line.append(
                    f"{readout}: CKA {linear_cka(emb, pca):.3f}, "
                    f"shared {K}-NN {shared_neighbours(emb, pca):.3f}"
                )
            print("; ".join(line))


if __name__ == "__main__":
    main(sys.argv[1:])
