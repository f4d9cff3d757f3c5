"""Two JAX processes on localhost (CPU, gloo collectives) train configs/smoke.py together, each
feeding its own rows of every global batch: the same losses, gradient norms and parameters as one
process on the same (2, 2) mesh, and Orbax checkpoints that restore in two processes or in one."""

import json
import os
import re
import shutil
import socket
import subprocess
import time

import jax
import numpy as np
import pytest
from flax import nnx
from train_helpers import REPO, SYNTHETIC, smoke_command, smoke_config

from sigjax.training import load_model, train_and_evaluate

NUM_STEPS = 6
OVERRIDES = {
    **SYNTHETIC,
    "train.num_steps": NUM_STEPS,
    "train.checkpoint_every": 3,
    "train.keep_checkpoints": 5,
    "train.eval_every": 3,  # Validation (replicated batches on a multi-process mesh) at 3 and 6.
    # 4 devices: (data, fsdp) = (2, 2), each process holding one data row of 2 devices.
    "mesh.data": 2,
    "mesh.fsdp": 2,
}
TIMEOUT_S = 150  # Per two-process launch; one takes about 30 s on 2 CPU cores.
# Across processes the reductions go through gloo instead of in-process collectives.
RTOL = {"train/loss": 1e-5, "train/grad_norm": 1e-4, "val/loss": 1e-5}
ROWS_LINE = re.compile(r"process (\d) of (\d): 2 devices, feeds rows \[([\d, ]+)\] of each")


def _rows(workdir, timings: bool = True) -> list[dict]:
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return (
        rows
        if timings
        else [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]
    )


def _params(workdir) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(load_model(workdir)[0], nnx.Param))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _train_two_processes(workdir, logdir) -> list[str]:
    """`python -m train` as processes 0 and 1 of one run; returns their logs (stdout + stderr)."""
    cmd = smoke_command(workdir, OVERRIDES)
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_COORDINATOR_ADDRESS": f"localhost:{_free_port()}",
        "JAX_NUM_PROCESSES": "2",
        # Shared by the launches: the restart compiles nothing new.
        "JAX_COMPILATION_CACHE_DIR": str(logdir.parent / "jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    logdir.mkdir(parents=True)
    paths = [logdir / f"process_{i}.log" for i in range(2)]
    procs = []
    try:
        for i, path in enumerate(paths):
            # Logs go to files: two pipes read one after the other could fill and block a process.
            with open(path, "w") as out:
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=REPO,
                        env={**env, "JAX_PROCESS_ID": str(i)},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = time.monotonic() + TIMEOUT_S
        # Until both are done, one has failed (its peer would wait for it), or time is up.
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if all(c is not None for c in codes) or any(c for c in codes):
                break
            time.sleep(0.1)
    finally:
        for proc in procs:  # Timed out, or left waiting for a dead peer.
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = [p.read_text() for p in paths]
    codes = [proc.returncode for proc in procs]
    assert codes == [0, 0], (
        f"exit statuses {codes} (-9: killed after a timeout or a failed peer)"
        + ("".join(f"\n--- process {i}:\n{log[-2000:]}" for i, log in enumerate(logs)))
    )
    return logs


def _assert_rows_close(got, want, steps):
    assert [r["step"] for r in got] == steps
    want = {r["step"]: r for r in want}
    for row in got:
        ref = want[row["step"]]
        assert ("val/loss" in row) == ("val/loss" in ref), row["step"]
        for key, rtol in RTOL.items():
            if key in ref:
                assert row[key] == pytest.approx(ref[key], rel=rtol), (row["step"], key)


def _assert_params_close(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The one-process reference (in this process, on 4 of its 8 devices) and the two-process
    run, both trained straight through NUM_STEPS with checkpoints at 3 and 6."""
    root = tmp_path_factory.mktemp("multiprocess")
    train_and_evaluate(smoke_config(**OVERRIDES), root / "one")
    logs = _train_two_processes(root / "two", root / "logs_two")
    return root, logs


@pytest.mark.slow
def test_two_processes_feed_disjoint_rows_and_match_one_process(runs):
    root, logs = runs
    fed = {}
    for i, log in enumerate(logs):
        found = ROWS_LINE.findall(log)
        assert len(found) == 1, f"process {i}: no rows line in\n{log[-3000:]}"
        index, count, rows = found[0]
        assert (int(index), int(count)) == (i, 2)
        fed[i] = {int(r) for r in rows.split(",")}
    # Each process put half of the batch on its devices, and the halves make the whole batch.
    assert fed[0].isdisjoint(fed[1]) and len(fed[0]) == len(fed[1]) == 4
    assert fed[0] | fed[1] == set(range(smoke_config().data.batch_size))

    _assert_rows_close(_rows(root / "two"), _rows(root / "one"), list(range(1, NUM_STEPS + 1)))
    _assert_params_close(_params(root / "two"), _params(root / "one"))
    steps = sorted(int(p.name) for p in (root / "two" / "checkpoints").iterdir())
    assert steps == [3, 6]


@pytest.mark.slow
def test_two_processes_resume_from_their_checkpoint(runs):
    root, _ = runs
    resumed = root / "two_resumed"
    shutil.copytree(root / "two", resumed)
    shutil.rmtree(resumed / "checkpoints" / str(NUM_STEPS))  # As if killed after step 3's save.
    logs = _train_two_processes(resumed, root / "logs_resumed")
    for log in logs:
        assert "resumed from step 3" in log
    # The same processes, programs and data: the continued run redoes steps 4-6 bit for bit.
    assert _rows(resumed, timings=False) == _rows(root / "two", timings=False)
    for x, y in zip(_params(resumed), _params(root / "two"), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_one_process_restores_the_two_process_checkpoint(runs):
    root, _ = runs
    single = root / "two_then_one"
    shutil.copytree(root / "two", single)
    shutil.rmtree(single / "checkpoints" / str(NUM_STEPS))
    # Steps 1-3 and the step-3 checkpoint come from two processes, steps 4-6 from this one.
    train_and_evaluate(smoke_config(**OVERRIDES), single)
    _assert_rows_close(_rows(single), _rows(root / "one"), list(range(1, NUM_STEPS + 1)))
    _assert_params_close(_params(single), _params(root / "one"))
