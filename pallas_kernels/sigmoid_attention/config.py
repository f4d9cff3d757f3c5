"""Kernel configurations (tiles, warps, stages, backward variant) and their tuned tables.

All block sizes are powers of 2 (a Triton requirement). Callers pad T to a multiple of every
query block and S to a multiple of every key block.

Tuned configurations are data, not code: `tuned/<device>.json` holds one entry per (head dim,
dtype, length bucket), written by `python -m eval kernels tune` (see docs/benchmarks.md).
`tuned/default.json` serves every device without a table of its own; its values were measured
fastest on an H200 (docs/benchmarks.md runs 5-7). A device table is searched first, then the
default table, then the `KernelConfig()` defaults.
"""

import dataclasses
import functools
import json
import pathlib
import re

TUNED_DIR = pathlib.Path(__file__).with_name("tuned")
DEFAULT_TABLE = "default"
_TABLE_VERSION = 1
# Tiles of the Hopper backward: 64 queries, and 2 warpgroups of 64 keys per program.
HOPPER_QUERY_MULTIPLE = 64
HOPPER_KEY_MULTIPLE = 128


def next_power_of_2(x: int) -> int:
    """The smallest power of 2 >= x (1 for x <= 1): head-dim and length buckets."""
    return 1 << max(0, int(x) - 1).bit_length()


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Tiles and launch parameters of the forward and backward kernels.

    Attributes:
      block_q, block_k: forward query/key tile.
      num_warps, num_stages: forward launch.
      block_q_dq, block_k_dq: dQ kernel query/key tile.
      block_q_dkv, block_k_dkv: dK/dV kernel query/key tile.
      num_warps_bwd, num_stages_bwd: backward launches.
      fused_bwd: one backward kernel over key blocks that also adds dQ atomically into a float32
        buffer (5 tile products per tile pair), instead of a dK/dV kernel plus a dQ kernel (7).
      hopper_bwd: on Hopper GPUs (compute capability 9.x), the fused backward of hopper.py
        (Pallas Mosaic GPU: wgmma, TMA, one TMA reduce-add per dQ tile) where it applies (head
        dim 64 or 128, 16-bit inputs; causal masking, a per-key bias gradient and, per shard,
        multi-device shard_map included); elsewhere the Triton backward above runs as if this
        were False.
      hopper_shared_dq: with hopper_bwd, `fused_backward(shared_dq=True)`: one dq reduce-add per
        program and query tile instead of one per warpgroup (H=128: 524 vs 453 TFLOPS backward
        alone on an H200, docs/benchmarks.md run 11; H=64: 64-byte swizzled tiles).
      hopper_dq_rows: with hopper_shared_dq, `fused_backward(dq_rows=True, block_q=128)`: the
        program's one dq share is split between the warpgroups by query rows (64 each) instead
        of by columns, so H=64 keeps 128-byte swizzled tiles (T is then padded to a multiple of
        128). H=64: the backward alone 0.93-0.96x the time of one share per warpgroup, fwd+bwd
        1.12x cuDNN's where that gave 1.03-1.05x (one H100, docs/benchmarks.md run 22).
      hopper_fwd: the same for the forward (hopper.py's `fused_forward`, same restrictions, any
        bias): 1.05-1.18x cuDNN's softmax forward on an H200 (docs/benchmarks.md run 11).
    """

    block_q: int = 128
    block_k: int = 64
    num_warps: int = 4
    num_stages: int = 3
    block_q_dq: int = 64
    block_k_dq: int = 64
    block_q_dkv: int = 64
    block_k_dkv: int = 64
    num_warps_bwd: int = 4
    num_stages_bwd: int = 2
    fused_bwd: bool = False
    hopper_bwd: bool = False
    hopper_shared_dq: bool = False
    hopper_dq_rows: bool = False
    hopper_fwd: bool = False

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.startswith("block_") and (value < 16 or value & (value - 1)):
                raise ValueError(
                    f"KernelConfig.{field.name}: got {value}, expected a power of 2 >= 16"
                )
            if field.name.startswith("num_") and value < 1:
                raise ValueError(f"KernelConfig.{field.name}: got {value}, expected >= 1")
        if self.hopper_dq_rows and not self.hopper_shared_dq:
            raise ValueError("KernelConfig.hopper_dq_rows: needs hopper_shared_dq=True")

    @property
    def q_multiple(self) -> int:
        """T is padded to a multiple of this."""
        hopper = HOPPER_QUERY_MULTIPLE if self.hopper_bwd else 0
        if self.hopper_fwd or (self.hopper_bwd and self.hopper_dq_rows):
            hopper = 2 * HOPPER_QUERY_MULTIPLE  # Two warpgroups' query tiles per program.
        return max(self.block_q, self.block_q_dq, self.block_q_dkv, hopper)

    @property
    def k_multiple(self) -> int:
        """S is padded to a multiple of this."""
        hopper = HOPPER_KEY_MULTIPLE if self.hopper_bwd or self.hopper_fwd else 0
        return max(self.block_k, self.block_k_dq, self.block_k_dkv, hopper)


def device_table_name(device_kind: str) -> str:
    """File stem of a device's table: "NVIDIA H200" -> "nvidia_h200"."""
    return re.sub(r"[^a-z0-9]+", "_", device_kind.lower()).strip("_") or DEFAULT_TABLE


def table_path(device_kind: str | None) -> pathlib.Path:
    """`tuned/<device>.json` (or `tuned/default.json` for None)."""
    name = DEFAULT_TABLE if device_kind is None else device_table_name(device_kind)
    return TUNED_DIR / f"{name}.json"


def entry_key(entry: dict) -> tuple:
    """(head_dim, dtype, max_seq_len) of a table entry; max_seq_len None covers every length."""
    return (int(entry["head_dim"]), str(entry["dtype"]), entry.get("max_seq_len"))


def _check_entry(entry: dict, where: str) -> dict:
    for name in ("head_dim", "dtype", "config"):
        if name not in entry:
            raise ValueError(f"{where}: entry {entry!r} has no {name!r}")
    bucket = entry.get("max_seq_len")
    if bucket is not None and (not isinstance(bucket, int) or next_power_of_2(bucket) != bucket):
        raise ValueError(f"{where}: max_seq_len got {bucket!r}, expected a power of 2 or null")
    unknown = set(entry["config"]) - {f.name for f in dataclasses.fields(KernelConfig)}
    if unknown:
        raise ValueError(f"{where}: config fields {sorted(unknown)} are not KernelConfig fields")
    try:
        KernelConfig(**entry["config"])
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    return entry


def read_table(path: pathlib.Path) -> list[dict]:
    """The validated entries of a table file; [] when the file does not exist.

    Raises:
      ValueError: a malformed file or entry (naming the file).
    """
    path = pathlib.Path(path)
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ValueError(f"{path}: got {type(data).__name__}, expected {{'entries': [...]}}")
    return [_check_entry(e, str(path)) for e in data["entries"]]


def merge_entries(old: list[dict], new: list[dict]) -> list[dict]:
    """old with every entry of new added; an entry replaces only the one with its own key.

    Keys are (head dim, dtype, length bucket): a new T <= 8192 result leaves T <= 4096 alone.
    """
    merged = {entry_key(e): e for e in old}
    for e in new:
        merged[entry_key(_check_entry(e, "new entry"))] = e
    return sorted(merged.values(), key=lambda e: (*entry_key(e)[:2], entry_key(e)[2] or 1 << 62))


def write_table(path: pathlib.Path, entries: list[dict], *, device_kind: str, meta=None) -> None:
    """Merges entries into the table at path (created if missing), atomically."""
    path = pathlib.Path(path)
    merged = merge_entries(read_table(path), entries)
    data = json.loads(path.read_text()) if path.exists() else {}  # Keeps notes already there.
    data.update(version=_TABLE_VERSION, device_kind=device_kind, **(meta or {}))
    data["entries"] = merged
    from sigjax._io import atomic_write  # Tuning only; the kernels themselves never need sigjax.

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1) + "\n")
    _cached_table.cache_clear()


@functools.cache
def _cached_table(path: str) -> tuple:
    return tuple(read_table(pathlib.Path(path)))


def lookup(entries, head_dim: int, dtype_name: str, seq_len: int | None) -> dict | None:
    """The entry for (head_dim, dtype_name) whose length bucket is the smallest >= seq_len.

    Entries without a bucket cover every length and come after bucketed ones; past the largest
    bucket (and with no unbucketed entry) the largest bucket serves.
    """
    matches = [e for e in entries if e["head_dim"] == head_dim and e["dtype"] == dtype_name]
    if not matches:
        return None
    t = next_power_of_2(seq_len) if seq_len else None
    bucketed = sorted((e for e in matches if e.get("max_seq_len")), key=lambda e: e["max_seq_len"])
    anywhere = [e for e in matches if not e.get("max_seq_len")]
    if t is not None:
        fits = [e for e in bucketed if e["max_seq_len"] >= t]
        if fits:
            return fits[0]
    if anywhere:
        return anywhere[0]
    return bucketed[-1] if bucketed else None


def default_config(
    head_dim: int, dtype_name: str, seq_len: int | None = None, device_kind: str | None = None
) -> KernelConfig:
    """The tuned configuration for a head dim, dtype and sequence length on a device.

    Args:
      head_dim: H, rounded up to a power of 2 in [16, 256] here.
      dtype_name: input dtype name; float16 uses bfloat16's entries unless it has its own.
      seq_len: the longer of T and S (None: the entry for every length).
      device_kind: `jax.Device.device_kind`; None or a device without a table uses the default
        table.

    Returns:
      The first match in the device table, then the default table, else `KernelConfig()`.
    """
    h = min(max(next_power_of_2(head_dim), 16), 256)
    tables = [table_path(None)]
    if device_kind is not None and table_path(device_kind) != tables[0]:
        tables.insert(0, table_path(device_kind))
    dtypes = [dtype_name] + (["bfloat16"] if dtype_name == "float16" else [])
    for path in tables:
        entries = _cached_table(str(path))
        for dt in dtypes:
            entry = lookup(entries, h, dt, seq_len)
            if entry is not None:
                return KernelConfig(**entry["config"])
    return KernelConfig()
