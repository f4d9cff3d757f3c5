"""AnnData in, AnnData out: a TPM-like data set trains, embeds and scores; train and embed read a
log-normalised file alike; embed keeps everything the input had; --inplace is atomic; the API."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytestmark = pytest.mark.slow


def _files(root):
    """The same synthetic cells as counts, log-normalised and TPM-like (per-cell sum 1e6) files."""
    import scanpy as sc

    from sigjax.data import synthetic_anndata

    counts = synthetic_anndata(n_cells=200, n_genes=400, n_types=3, min_genes=40, max_genes=120)
    x = counts.X.astype(np.float64)
    tpm = counts.copy()
    tpm.X = sp.csr_matrix(sp.diags(1e6 / np.asarray(x.sum(axis=1)).ravel()) @ x).astype(np.float32)
    lognorm = counts.copy()
    sc.pp.normalize_total(lognorm, target_sum=1e4)
    sc.pp.log1p(lognorm)
    paths = {}
    for name, adata in (("counts", counts), ("tpm", tpm), ("lognorm", lognorm)):
        paths[name] = root / f"{name}.h5ad"
        adata.write_h5ad(paths[name])
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("values"))


@pytest.fixture(scope="module")
def tpm_run(files, tmp_path_factory):
    """A smoke-sized run trained on the TPM-like file, continuous values (magnitudes matter)."""
    from configs import smoke
    from sigjax.training import train_and_evaluate

    config = smoke.get_config()
    config.data.path = str(files["tpm"])
    config.data.value_encoding = "continuous"
    workdir = tmp_path_factory.mktemp("tpm_run")
    train_and_evaluate(config, workdir)
    return workdir


def rich(files):
    """An AnnData as scanpy leaves it: scaled X, log-normalised .raw, counts layer, the rest."""
    import scanpy as sc

    counts = ad.read_h5ad(files["counts"])
    lognorm = ad.read_h5ad(files["lognorm"])
    a = lognorm.copy()
    a.var["symbol"] = [f"S{i}" for i in range(a.n_vars)]
    a.raw = a
    a.layers["counts"] = counts.X.copy()
    a.obs["batch"] = pd.Categorical(np.arange(a.n_obs) % 2)
    a.obsm["X_pca"] = np.random.default_rng(0).normal(size=(a.n_obs, 5)).astype(np.float32)
    a.obsp["distances"] = sp.random(a.n_obs, a.n_obs, density=0.01, format="csr", random_state=0)
    a.uns["note"] = {"source": "test", "n": 3}
    sc.pp.scale(a)  # X now holds negative values; .raw keeps the log-normalised ones.
    return a


def dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def assert_kept(got, src):
    assert list(got.obs_names) == list(src.obs_names)
    pd.testing.assert_frame_equal(got.obs, src.obs)
    pd.testing.assert_frame_equal(got.var, src.var)
    np.testing.assert_allclose(dense(got.X), dense(src.X))
    np.testing.assert_array_equal(got.layers["counts"].toarray(), src.layers["counts"].toarray())
    np.testing.assert_array_equal(got.obsm["X_pca"], src.obsm["X_pca"])
    np.testing.assert_array_equal(got.obsp["distances"].toarray(), src.obsp["distances"].toarray())
    assert got.uns["note"]["source"] == "test" and got.uns["note"]["n"] == 3
    assert got.raw is not None
    pd.testing.assert_frame_equal(got.raw.var, src.raw.var)
    np.testing.assert_allclose(got.raw.X.toarray(), src.raw.X.toarray())


def test_tpm_data_set_trains_embeds_and_scores(tpm_run, files, tmp_path, capsys):
    from eval.__main__ import main
    from sigjax.evaluation import read_metrics, score_file

    assert ad.read_h5ad(files["tpm"]).X.max() > 5_000  # TPM-like: non-integer, large.
    assert np.isfinite(read_metrics(tpm_run)[-1]["val/loss"])
    out = tmp_path / "tpm_emb.h5ad"
    main(["embed", f"--workdir={tpm_run}", f"--data={files['tpm']}", f"--out={out}"])
    x = ad.read_h5ad(out).obsm["X_sigjax"]
    assert x.shape == (200, 32) and np.all(np.isfinite(x)) and x.std() > 1e-3
    scores = score_file(out, "cell_type", umap=False)
    assert all(np.isfinite(v) for v in scores["X_sigjax"].values())
    assert "error" not in scores["X_pca_hvg"]  # The baseline reads TPM too.
    assert 0 <= scores["X_sigjax"]["clisi"] <= 1
    # The same cells as counts give the same embedding: TPM is counts up to a per-cell scale.
    main(["embed", f"--workdir={tpm_run}", f"--data={files['counts']}", f"--out={out}"])
    np.testing.assert_allclose(ad.read_h5ad(out).obsm["X_sigjax"], x, atol=1e-4)
    assert f"wrote {out}" in capsys.readouterr().out


def test_train_and_embed_see_the_same_values(tpm_run, files, caplog):
    """A log-normalised file: the training path and the embedding path give identical tokens."""
    from sigjax.data import load_from_config, tokenize_with
    from sigjax.evaluation import embed_anndata, embed_cells
    from sigjax.training import load_model

    model, config, vocab = load_model(tpm_run)
    assert config.data.value_encoding == "continuous"
    cfg = config.data
    cfg.path = str(files["lognorm"])
    train_tokens = tokenize_with(cfg, load_from_config(cfg), vocab)  # What make_datasets uses.
    counts_tokens = tokenize_with(cfg, ad.read_h5ad(files["counts"]), vocab)
    np.testing.assert_allclose(train_tokens.values, counts_tokens.values, rtol=1e-5, atol=1e-5)
    with caplog.at_level(logging.INFO, logger="sigjax"):
        embedded, _ = embed_anndata(tpm_run, ad.read_h5ad(files["lognorm"]))
    assert "values read as 'log1p' (input_values='auto'" in caplog.text
    np.testing.assert_allclose(
        embedded.obsm["X_sigjax"], embed_cells(model, config, train_tokens), atol=1e-5
    )


def test_embed_keeps_everything_with_and_without_use_raw(tpm_run, files, tmp_path, caplog):
    from sigjax.evaluation import embed_file

    src = rich(files)
    src.write_h5ad(tmp_path / "rich.h5ad")
    with caplog.at_level(logging.INFO, logger="sigjax"):
        embed_file(tpm_run, tmp_path / "rich.h5ad", tmp_path / "raw.h5ad", use_raw=True)
    assert "adata.raw.X: values read as 'log1p' (input_values='auto'" in caplog.text
    with_raw = ad.read_h5ad(tmp_path / "raw.h5ad")
    assert_kept(with_raw, src)
    embed_file(
        tpm_run, tmp_path / "rich.h5ad", tmp_path / "layer.h5ad", layer="counts", values="counts"
    )
    with_layer = ad.read_h5ad(tmp_path / "layer.h5ad")
    assert_kept(with_layer, src)
    # raw (log1p, expm1'd back) and the counts layer hold the same cells: the same embedding.
    np.testing.assert_allclose(with_raw.obsm["X_sigjax"], with_layer.obsm["X_sigjax"], atol=1e-4)
    assert with_raw.obsm["X_sigjax"].shape == (200, 32)
    # Without --use_raw, on a file whose X holds the counts.
    plain = src.copy()
    plain.X = plain.layers["counts"].copy()
    plain.write_h5ad(tmp_path / "plain.h5ad")
    embed_file(tpm_run, tmp_path / "plain.h5ad", tmp_path / "plain_emb.h5ad")
    got = ad.read_h5ad(tmp_path / "plain_emb.h5ad")
    assert_kept(got, plain)
    np.testing.assert_allclose(got.obsm["X_sigjax"], with_layer.obsm["X_sigjax"], atol=1e-5)


def test_scaled_x_with_raw_suggests_use_raw(tpm_run, files, tmp_path):
    from eval.__main__ import main

    rich(files).write_h5ad(tmp_path / "scaled.h5ad")
    with pytest.raises(ValueError, match=r"negative values .*try --use_raw"):
        main(
            [
                "embed",
                f"--workdir={tpm_run}",
                f"--data={tmp_path / 'scaled.h5ad'}",
                f"--out={tmp_path / 'x.h5ad'}",
            ]
        )
    # An unknown layer is named with the file's layers (anndata 0.13 also lists None for X).
    with pytest.raises(ValueError, match=r"--layer: got 'spliced', expected one of \['counts'\]"):
        main(
            [
                "embed",
                f"--workdir={tpm_run}",
                f"--data={tmp_path / 'scaled.h5ad'}",
                f"--out={tmp_path / 'x.h5ad'}",
                "--layer=spliced",
            ]
        )


def test_inplace_is_atomic(tpm_run, files, tmp_path, monkeypatch):
    from sigjax.evaluation import embed_file

    path = tmp_path / "cells.h5ad"
    src = rich(files)
    src.write_h5ad(path)
    before = path.read_bytes()

    def broken(self, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", broken)
    with pytest.raises(OSError, match="disk full"):
        embed_file(tpm_run, path, inplace=True, use_raw=True)
    assert path.read_bytes() == before  # The input is intact ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.h5ad"]  # ... and no temp file.
    monkeypatch.undo()
    embed_file(tpm_run, path, inplace=True, use_raw=True)
    got = ad.read_h5ad(path)
    assert got.obsm["X_sigjax"].shape == (200, 32)
    assert_kept(got, src)
    with pytest.raises(ValueError, match="expected exactly one"):
        embed_file(tpm_run, path, tmp_path / "other.h5ad", inplace=True)


def test_python_api_equals_the_file_route(tpm_run, files, tmp_path):
    import sigjax
    import sigjax.evaluation as ev

    assert sigjax.embed is ev.embed
    ev.embed_file(tpm_run, files["lognorm"], tmp_path / "out.h5ad")
    adata = ad.read_h5ad(files["lognorm"])
    obs, var = adata.obs.copy(), adata.var.copy()
    x = ev.embed(adata, tpm_run)
    np.testing.assert_allclose(x, ad.read_h5ad(tmp_path / "out.h5ad").obsm["X_sigjax"], atol=0)
    assert adata.obsm["X_sigjax"] is x
    pd.testing.assert_frame_equal(adata.obs, obs)
    pd.testing.assert_frame_equal(adata.var, var)
    # --values overrides the run's own setting: log values read as counts differ.
    other = ev.embed(adata.copy(), tpm_run, values="counts")
    assert np.abs(other - x).max() > 1e-3
    with pytest.raises(ValueError, match="--values: got 'tpm'"):
        ev.embed(adata, tpm_run, values="tpm")


def test_run_older_than_input_values_reads_as_its_training_did(tpm_run, files, tmp_path, caplog):
    import json
    import shutil

    import sigjax.evaluation as ev
    from sigjax.data import LEGACY_VALUES

    old = tmp_path / "old_run"
    shutil.copytree(tpm_run, old)
    config = json.loads((old / "config.json").read_text())
    del config["data"]["input_values"]  # As saved before the field existed.
    (old / "config.json").write_text(json.dumps(config))
    adata = ad.read_h5ad(files["lognorm"])
    with caplog.at_level(logging.INFO, logger="sigjax"):
        x = ev.embed(adata, old)
    assert LEGACY_VALUES == "counts"
    assert "not whole numbers (max" in caplog.text and "read as 'counts', as asked" in caplog.text
    assert "pass --values=log1p for log-normalised data" in caplog.text
    np.testing.assert_allclose(x, ev.embed(adata, tpm_run, values="counts"), atol=1e-6)
    np.testing.assert_allclose(
        ev.embed(adata, old, values="auto"), ev.embed(adata, tpm_run), atol=1e-6
    )


def test_embed_file_names_the_flag_for_a_non_anndata_file(tmp_path):
    from sigjax.evaluation import embed_file

    (tmp_path / "cells.h5ad").write_text("cell,gene\n1,2\n")
    with pytest.raises(ValueError, match="--data: cannot read .* expected an AnnData file"):
        embed_file(tmp_path / "run", tmp_path / "cells.h5ad", tmp_path / "out.h5ad")


def test_embed_reads_genes_without_an_id_in_the_gene_column_as_training_does(files):
    from sigjax.evaluation._embed import _source

    a = ad.read_h5ad(files["counts"])
    symbols = [f"S{i}" for i in range(a.n_vars)]
    symbols[1] = np.nan
    a.var["symbol"] = pd.Categorical(symbols)
    source, _, _ = _source(a, None, False, "symbol")
    assert list(source.var_names[:3]) == ["S0", a.var_names[1], "S2"]


def test_embed_and_the_pca_baseline_of_an_anndata_without_x(files):
    from sigjax.evaluation import as_counts
    from sigjax.evaluation._embed import _source

    a = ad.read_h5ad(files["counts"])
    a.layers["counts"], a.X = a.X, None
    with pytest.raises(ValueError, match=r"--layer: the AnnData has no X; .* \['counts'\]"):
        _source(a, None, False, None)
    assert _source(a, "counts", False, None)[0].X is a.layers["counts"]
    with pytest.raises(ValueError, match="adata.X: got None"):  # score: baseline skipped.
        as_counts(a)
