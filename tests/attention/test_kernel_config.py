"""Kernel configurations: the JSON tables, their lookup by device, head dim, dtype and length, and
the merge a tune run does (one length bucket never overwrites another)."""

import dataclasses
import json
import shutil

import pytest

from pallas_kernels.sigmoid_attention import config
from pallas_kernels.sigmoid_attention.config import KernelConfig


@pytest.fixture
def tuned_dir(tmp_path, monkeypatch):
    """A private copy of the tuned tables (the default one only)."""
    d = tmp_path / "tuned"
    d.mkdir()
    shutil.copy(config.TUNED_DIR / "default.json", d / "default.json")
    monkeypatch.setattr(config, "TUNED_DIR", d)
    config._cached_table.cache_clear()
    yield d
    config._cached_table.cache_clear()


def _entry(h, dtype, bucket, **fields):
    return {"head_dim": h, "dtype": dtype, "max_seq_len": bucket, "config": fields}


def test_next_power_of_2():
    assert [config.next_power_of_2(x) for x in (0, 1, 2, 3, 16, 17, 1000, 1024)] == [
        1,
        1,
        2,
        4,
        16,
        32,
        1024,
        1024,
    ]


def test_default_table_keeps_the_hand_tables_values():
    # The values of the former hand-written table (block_sizes.py) for every head dim and dtype.
    bf16 = KernelConfig(block_q=128, block_k=64, num_warps=4, num_stages=3)
    h128 = KernelConfig(block_q=128, block_k=32, num_warps=4, num_stages=4)
    small = dict(block_q_dq=32, block_k_dq=32, block_q_dkv=32, block_k_dkv=32)
    h256 = KernelConfig(block_q=64, block_k=32, num_warps=4, num_stages=2, **small)
    f32 = KernelConfig(block_q=64, block_k=32, num_stages=2, num_stages_bwd=1, **small)
    f32_256 = KernelConfig(block_q=32, block_k=32, num_stages=1, num_stages_bwd=1, **small)
    # Head dims 64 and 128 also take the Hopper kernels (runs 10-11), on Hopper GPUs only, with
    # one dq share per program (run 11; at H=64 split by query rows, run 22).
    hopper = dict(hopper_bwd=True, hopper_fwd=True)
    want = {
        16: bf16,
        32: bf16,
        64: dataclasses.replace(bf16, **hopper, hopper_shared_dq=True, hopper_dq_rows=True),
        128: dataclasses.replace(h128, **hopper, hopper_shared_dq=True),
        256: h256,
    }
    for h, cfg in want.items():
        assert config.default_config(h, "bfloat16") == cfg, h
        assert config.default_config(h, "float16", 8192, "NVIDIA H200") == cfg, h
        assert config.default_config(h, "float32", 4096) == (f32_256 if h == 256 else f32), h
    assert config.default_config(24, "bfloat16") == bf16  # Rounded up to 32.
    assert config.default_config(48, "bfloat16") == want[64]  # Rounded up to 64.
    assert config.default_config(512, "bfloat16") == h256  # Clamped to 256.


def test_unknown_device_and_dtype_fall_back(tuned_dir):
    assert config.default_config(64, "bfloat16", 1024, "Some Future GPU") == config.default_config(
        64, "bfloat16"
    )
    (tuned_dir / "default.json").unlink()
    config._cached_table.cache_clear()
    assert config.default_config(64, "bfloat16", 1024, "NVIDIA H200") == KernelConfig()


def test_lookup_takes_the_smallest_bucket_that_fits():
    entries = [
        _entry(64, "bfloat16", 4096, block_q=32),
        _entry(64, "bfloat16", 1024, block_q=16),
        _entry(64, "bfloat16", None, block_q=128),
        _entry(64, "float32", 2048, block_q=64),
    ]
    pick = lambda t, dt="bfloat16": config.lookup(entries, 64, dt, t)["config"]["block_q"]  # noqa: E731
    assert [pick(t) for t in (8, 1000, 1024, 1025, 4096, 4097, None)] == [
        16,
        16,
        16,
        32,
        32,
        128,
        128,
    ]
    # No unbucketed entry: past the largest bucket, the largest serves.
    assert [pick(t, "float32") for t in (100, 9000, None)] == [64, 64, 64]
    assert config.lookup(entries, 128, "bfloat16", 1024) is None


def test_device_table_comes_first_and_buckets_merge(tuned_dir):
    device = "NVIDIA H200"
    path = config.table_path(device)
    assert path == tuned_dir / "nvidia_h200.json"
    config.write_table(path, [_entry(128, "bfloat16", 4096, block_q=64)], device_kind=device)
    config.write_table(
        path,
        [_entry(128, "bfloat16", 8192, block_q=32), _entry(64, "bfloat16", 8192, block_k=16)],
        device_kind=device,
    )
    # A second tune run at another length adds its bucket; it does not overwrite the first.
    keys = [config.entry_key(e) for e in config.read_table(path)]
    assert keys == [(64, "bfloat16", 8192), (128, "bfloat16", 4096), (128, "bfloat16", 8192)]
    assert config.default_config(128, "bfloat16", 2000, device).block_q == 64
    assert config.default_config(128, "bfloat16", 8192, device).block_q == 32
    assert config.default_config(64, "bfloat16", 100, device).block_k == 16
    # Head dims and dtypes the device table lacks come from the default table.
    assert config.default_config(32, "float32", 100, device) == config.default_config(32, "float32")
    # The same key again replaces only that entry; notes already in the file stay.
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "note": "kept"}))
    config.write_table(path, [_entry(128, "bfloat16", 4096, block_q=128)], device_kind=device)
    data = json.loads(path.read_text())
    assert data["note"] == "kept" and data["device_kind"] == device and len(data["entries"]) == 3
    assert config.default_config(128, "bfloat16", 4096, device).block_q == 128
    assert config.default_config(128, "bfloat16", 8192, device).block_q == 32


@pytest.mark.parametrize(
    "entry, match",
    [
        (_entry(64, "bfloat16", 1000), "max_seq_len got 1000"),
        (_entry(64, "bfloat16", None, block_x=16), r"\['block_x'\] are not KernelConfig fields"),
        (_entry(64, "bfloat16", None, block_q=48), "KernelConfig.block_q: got 48"),
        ({"head_dim": 64, "config": {}}, "has no 'dtype'"),
    ],
)
def test_malformed_tables_name_the_file(tmp_path, entry, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"entries": [entry]}))
    with pytest.raises(ValueError, match=match) as err:
        config.read_table(path)
    assert str(path) in str(err.value)
    path.write_text("[]")
    with pytest.raises(ValueError, match="expected"):
        config.read_table(path)


def test_kernel_config_validates_fields():
    with pytest.raises(ValueError, match="KernelConfig.block_k: got 24, expected a power of 2"):
        KernelConfig(block_k=24)
    with pytest.raises(ValueError, match="KernelConfig.num_warps: got 0, expected >= 1"):
        KernelConfig(num_warps=0)
    with pytest.raises(ValueError, match="KernelConfig.hopper_dq_rows: needs hopper_shared_dq"):
        KernelConfig(hopper_bwd=True, hopper_dq_rows=True)
    # With it, T is padded for the 128 queries of a backward step even without the Hopper forward.
    assert KernelConfig(hopper_bwd=True).q_multiple == 128  # The Triton forward's block_q.
    rows = KernelConfig(
        block_q=64, hopper_bwd=True, hopper_shared_dq=True, hopper_dq_rows=True
    ).q_multiple
    assert rows == 128 and KernelConfig(block_q=64, hopper_bwd=True).q_multiple == 64
