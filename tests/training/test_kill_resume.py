"""SIGKILL `python -m train` at random moments (mid-step, mid-save), rerun each time: the final
parameters and the logged losses equal those of an uninterrupted run, bit for bit."""

import json
import os
import random
import signal
import subprocess
import time

import jax
import numpy as np
import pytest
from flax import nnx
from train_helpers import REPO, SYNTHETIC, smoke_command, smoke_config

from sigjax.training import load_model, train_and_evaluate

NUM_STEPS = 40
KILLS = 10
OVERRIDES = {
    **SYNTHETIC,
    "train.num_steps": NUM_STEPS,
    "train.warmup_steps": 5,
    "train.log_every": 1,
    "train.checkpoint_every": 1,  # A save in flight nearly all the time: kills land mid-save.
    "train.keep_checkpoints": 2,
    "train.eval_every": 0,
    "mesh.data": 1,  # One device: cheaper saves; the kills are what is tested here.
}


def _losses(workdir):
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["train/loss"], r["train/grad_norm"]) for r in rows]


def _last_step(workdir) -> int:
    try:
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tmp_path):
    reference = tmp_path / "reference"
    # Saving does not touch the trajectory: the reference saves only at the end.
    train_and_evaluate(
        smoke_config(**{**OVERRIDES, "train.checkpoint_every": NUM_STEPS}), reference
    )

    workdir = tmp_path / "killed"
    cmd = smoke_command(workdir, OVERRIDES)
    # Same device count as this session (conftest's 8 host devices) so the programs are the same;
    # a compilation cache makes the restarts cheap.
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    rng = random.Random(0)
    kills = mid_save = 0
    deadline = time.monotonic() + 420  # Generous: CI runs two test workers on two cores.
    while kills < KILLS:
        assert time.monotonic() < deadline, f"only {kills} kills before the deadline"
        start = _last_step(workdir)
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # Wait until this run has trained at least one step, then kill after a random delay.
        while proc.poll() is None and _last_step(workdir) <= start:
            time.sleep(0.02)
        if proc.poll() is not None:
            pytest.fail(
                f"run finished or died before kill {kills + 1}: {proc.stderr.read()[-2000:]}"
            )
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        kills += 1
        ckpts = workdir / "checkpoints"
        mid_save += any("tmp" in p.name for p in ckpts.iterdir()) if ckpts.exists() else 0
    assert _last_step(workdir) < NUM_STEPS, "the kills came too late: raise NUM_STEPS"
    final = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    print(f"{kills} kills, {mid_save} with a checkpoint being written")

    assert _losses(workdir) == _losses(reference)
    assert [s for s, _, _ in _losses(workdir)] == list(range(1, NUM_STEPS + 1))
    a = nnx.state(load_model(reference)[0], nnx.Param)
    b = nnx.state(load_model(workdir)[0], nnx.Param)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
