"""Shrink a sparse .h5ad for a device call's 64 MiB carry, and restore it there, bit for bit.

The packed pooled corpus (`python -m eval pack-pooled`, 50 MB with gzip) does not fit beside the
tracked tree (32 MB). Its X is integer counts in CSC or CSR form; the sorted index vectors become
deltas, and both deltas and counts are stored as uint8 with the rare values >= 255 listed apart,
then xz-compressed (~33 MB). Everything else in the file is copied as it is into a skeleton .h5ad.

  python docs/probes/compact_h5ad.py pack pooled.h5ad .pooled/        # here
  python docs/probes/compact_h5ad.py unpack .pooled/ /tmp/pooled.h5ad  # on the device

`unpack` checks the restored X against the checksums that `pack` wrote.
"""

import hashlib
import json
import lzma
import pathlib
import sys

import h5py
import numpy as np

_BIG = ("X/data", "X/indices")


def _split(a: np.ndarray) -> tuple[bytes, bytes]:
    small = np.minimum(a, 255).astype(np.uint8)
    pos = np.nonzero(a >= 255)[0]
    # Positions as gaps (small numbers compress well), then the values.
    extra = np.concatenate([np.diff(pos, prepend=0), a[pos]]).astype(np.uint32)
    return lzma.compress(small.tobytes(), preset=6), lzma.compress(extra.tobytes(), preset=9)


def _join(small: bytes, extra: bytes, dtype) -> np.ndarray:
    a = np.frombuffer(lzma.decompress(small), np.uint8).astype(np.int64)
    gaps, val = np.frombuffer(lzma.decompress(extra), np.uint32).astype(np.int64).reshape(2, -1)
    a[np.cumsum(gaps)] = val
    return a.astype(dtype)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def pack(src: str, out: str) -> None:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    skeleton = out / "skeleton.h5ad"
    with h5py.File(src, "r") as fi, h5py.File(skeleton, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        for name in fi:
            if name != "X":
                fi.copy(fi[name], fo, name=name)
        x = fo.create_group("X")
        for k, v in fi["X"].attrs.items():
            x.attrs[k] = v
        fi.copy(fi["X/indptr"], x, name="indptr")
        ptr = fi["X/indptr"][:]
        ind = fi["X/indices"][:]
        dat = fi["X/data"][:]
    if ind.min() < 0 or dat.min() < 0 or not np.array_equal(dat, np.round(dat)):
        raise ValueError(f"{src}: X must hold non-negative integer counts")
    starts = ptr[:-1][np.diff(ptr) > 0]
    delta = np.diff(ind.astype(np.int64), prepend=0)
    delta[starts] = ind[starts]
    if delta.min() < 0:
        raise ValueError(f"{src}: X's indices must be sorted within each row or column")
    meta = {
        "indices_dtype": str(ind.dtype),
        "data_dtype": str(dat.dtype),
        "indices_sha256": _digest(ind),
        "data_sha256": _digest(dat),
    }
    skeleton.with_suffix(".h5ad.xz").write_bytes(lzma.compress(skeleton.read_bytes(), preset=9))
    skeleton.unlink()
    for name, a in (("delta", delta), ("counts", dat.astype(np.int64))):
        small, extra = _split(a)
        (out / f"{name}.u8.xz").write_bytes(small)
        (out / f"{name}.extra.xz").write_bytes(extra)
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"packed {src} into {out}: {size / 1e6:.1f} MB")


def unpack(folder: str, dst: str) -> None:
    folder = pathlib.Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    dst = pathlib.Path(dst)
    dst.write_bytes(lzma.decompress((folder / "skeleton.h5ad.xz").read_bytes()))
    with h5py.File(dst, "a") as f:
        ptr = f["X/indptr"][:]
        delta = _join(
            (folder / "delta.u8.xz").read_bytes(),
            (folder / "delta.extra.xz").read_bytes(),
            np.int64,
        )
        # The deltas restart at each row's (column's) first entry, stored absolute.
        starts = ptr[:-1][np.diff(ptr) > 0]
        ind = _restart_cumsum(delta, starts).astype(meta["indices_dtype"])
        dat = _join(
            (folder / "counts.u8.xz").read_bytes(),
            (folder / "counts.extra.xz").read_bytes(),
            meta["data_dtype"],
        )
        if _digest(ind) != meta["indices_sha256"] or _digest(dat) != meta["data_sha256"]:
            raise ValueError(f"{folder}: restored X does not match the checksums of meta.json")
        f["X"].create_dataset("indices", data=ind)
        f["X"].create_dataset("data", data=dat)
    print(f"restored {dst} from {folder}")


def _restart_cumsum(delta: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sum of delta that restarts at each index in starts (delta there is absolute)."""
    total = np.cumsum(delta)
    base = np.zeros_like(total)
    base[starts] = total[starts] - delta[starts]
    return total - np.maximum.accumulate(base)


if __name__ == "__main__":
    cmd, a, b = sys.argv[1:4]
    {"pack": pack, "unpack": unpack}[cmd](a, b)
