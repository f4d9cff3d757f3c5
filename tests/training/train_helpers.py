"""Helpers shared by the training tests: tiny configs on bundled PBMC or small synthetic data.

A plain module (not a conftest) so the test modules can import it by a name unique in the suite.
"""

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `configs` is a top-level package of the repo.


def smoke_config(**overrides):
    """configs/smoke.py with `section.field` overrides (existing fields only)."""
    from configs import smoke

    config = smoke.get_config()
    config.lock()  # A misspelled field raises instead of being added.
    config.update_from_flattened_dict(overrides)
    config.unlock()
    return config


SYNTHETIC = {
    "data.dataset": "synthetic",
    "data.max_len": 64,
    "data.val_fraction": 0.2,
    "data.synthetic.n_cells": 80,
    "data.synthetic.n_genes": 150,
    "data.synthetic.min_genes": 20,
    "data.synthetic.max_genes": 60,
}


def smoke_command(workdir, overrides: dict) -> list[str]:
    """`python -m train` on configs/smoke.py with `--config.K=V` overrides, as an argv list."""
    return [
        sys.executable,
        "-m",
        "train",
        "--config=configs/smoke.py",
        f"--workdir={workdir}",
        *(f"--config.{k}={v}" for k, v in overrides.items()),
    ]


def cli(args, *, env=None, timeout=300):
    """Runs `python -m train ARGS` from the repo root."""
    return subprocess.run(
        [sys.executable, "-m", "train", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def with_frozen(tx, prefix: str):
    """`tx` with no update at all for the parameters whose path starts with `prefix`
    (e.g. "blocks/1/mlp"): a sub-block frozen on purpose, to test that it is reported."""
    import jax
    import optax

    def labels(params):
        def label(path, _):
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            return "frozen" if name.startswith(prefix) else "train"

        return jax.tree_util.tree_map_with_path(label, params)

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
