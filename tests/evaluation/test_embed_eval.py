"""Embedding and run evaluation with a real (tiny, 4-step) trained model on bundled PBMC."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from configs import smoke
    from sigjax.training import train_and_evaluate

    workdir = tmp_path_factory.mktemp("smoke_run")
    train_and_evaluate(smoke.get_config(), workdir)
    return workdir


@pytest.fixture(scope="module")
def pbmc_files(tmp_path_factory):
    import scanpy as sc

    from sigjax.data import load_dataset

    root = tmp_path_factory.mktemp("pbmc")
    counts = load_dataset("pbmc68k_reduced")
    counts.write_h5ad(root / "counts.h5ad")
    lognorm = counts.copy()
    sc.pp.normalize_total(lognorm, target_sum=1e4)
    sc.pp.log1p(lognorm)
    lognorm.write_h5ad(root / "lognorm.h5ad")
    return root


def test_embed_cli_counts_and_lognormalised_agree(run, pbmc_files, capsys):
    import anndata as ad

    from eval.__main__ import main

    for name in ("counts", "lognorm"):
        main(
            [
                "embed",
                f"--workdir={run}",
                f"--data={pbmc_files / name}.h5ad",
                f"--out={pbmc_files / name}_emb.h5ad",
                "--batch_size=128",
            ]
        )
    assert "genes matched to the model's vocabulary: 765 of 765" in capsys.readouterr().out
    a = ad.read_h5ad(pbmc_files / "counts_emb.h5ad").obsm["X_sigjax"]
    b = ad.read_h5ad(pbmc_files / "lognorm_emb.h5ad").obsm["X_sigjax"]
    assert a.shape == (700, 32)
    assert np.all(np.isfinite(a)) and a.std() > 0.1
    np.testing.assert_allclose(a, b, atol=1e-4)  # expm1 of log-normalised gives the same tokens
    assert np.abs(a[0] - a[1]).max() > 1e-3  # different cells, different embeddings


def test_embed_without_matching_genes_fails(run, pbmc_files):
    import anndata as ad

    from sigjax.evaluation import embed_anndata

    adata = ad.read_h5ad(pbmc_files / "counts.h5ad")
    adata.var_names = [f"unknown_{i}" for i in range(adata.n_vars)]
    with pytest.raises(ValueError, match="none of the 765 genes"):
        embed_anndata(run, adata)


def test_compare_evaluates_runs_without_scores(run, tmp_path):
    from sigjax.evaluation import SCORE_NAMES, compare_runs, evaluate_run, read_metrics

    assert not (run / "scores.json").exists()
    table = compare_runs([run], tmp_path, embed=True)  # evaluate_run(cells="val") first
    scores = json.loads((run / "scores.json").read_text())
    assert scores["cells"] == "val" and scores["n_cells"] == 70
    # The same deterministic validation loss that training logged at its last step.
    assert scores["val_loss"] == pytest.approx(read_metrics(run)[-1]["val/loss"], rel=1e-4)
    assert all(np.isfinite(scores[k]) for k in (*SCORE_NAMES, "knn_accuracy"))
    header, _, row = table.splitlines()
    assert header.split(" | ")[-4:] == ["knn_purity", "nmi", "ari", "knn_accuracy |"]
    assert row.split(" | ")[-1] == f"{scores['knn_accuracy']:.4g} |"
    with pytest.raises(ValueError, match="cells: got 'train'"):
        evaluate_run(run, cells="train")


def test_held_out_scores_with_the_pca_baseline_of_the_same_cells_and_a_verdict(run, tmp_path):
    from sigjax.evaluation import evaluate_run
    from sigjax.evaluation._demo import _verdict

    s = evaluate_run(run, cells="val", baseline=True, umap=True, write=False)
    # 70 held-out cells, scored with kNN accuracy from the training cells, model and baseline.
    assert s["n_cells"] == 70 and (run / "umap.png").stat().st_size > 0
    for k in ("knn_purity", "nmi", "knn_accuracy"):
        assert 0.0 <= s[k] <= 1.0 and 0.0 <= s[f"pca_hvg/{k}"] <= 1.0
    every = evaluate_run(run, cells="all", baseline=True, write=False)
    assert every["n_cells"] > s["n_cells"] and "knn_accuracy" not in every
    worse = {**s, **{k: s[f"pca_hvg/{k}"] - 0.1 for k in ("knn_purity", "nmi", "knn_accuracy")}}
    better = {**s, **{k: s[f"pca_hvg/{k}"] + 0.1 for k in ("knn_purity", "nmi", "knn_accuracy")}}
    line = _verdict({"sigmoid": better, "softmax": worse})
    assert "sigmoid beats or ties PCA on 3 of 3" in line
    assert "softmax beats or ties PCA on 0 of 3" in line
    assert line.endswith("Best kNN purity: sigmoid.")


def test_score_file_of_held_out_cells_equals_the_run_evaluation(run, pbmc_files, tmp_path):
    import anndata as ad

    import sigjax.evaluation as ev
    from sigjax.evaluation._score import score_file

    adata = ad.read_h5ad(pbmc_files / "counts.h5ad")
    ev.embed(adata, run)
    adata.write_h5ad(tmp_path / "emb.h5ad")
    got = score_file(tmp_path / "emb.h5ad", "cell_type", umap=False, heldout=run)
    want = ev.evaluate_run(run, cells="val", baseline=True, write=False)
    for k in ("knn_purity", "nmi", "knn_accuracy"):
        assert got["X_sigjax"][k] == pytest.approx(want[k], abs=1e-6)
        assert got["X_pca_hvg"][k] == pytest.approx(want[f"pca_hvg/{k}"], abs=1e-6)
    everything = score_file(tmp_path / "emb.h5ad", "cell_type", umap=False)
    assert "knn_accuracy" not in everything["X_sigjax"]
