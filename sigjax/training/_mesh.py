"""Devices: the (data, fsdp) mesh, parameter and batch shardings, multi-process start-up."""

import collections
import functools
import os

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

BATCH_AXES = ("data", "fsdp")
PREFETCH = 2  # Batches put on the devices ahead of the step that uses them.


def maybe_initialize_distributed(config) -> None:
    """jax.distributed.initialize() when asked by config or by the launcher's environment.

    JAX reads JAX_COORDINATOR_ADDRESS itself and detects SLURM/MPI/Kubernetes launches; for a
    plain launch, JAX_NUM_PROCESSES and JAX_PROCESS_ID give the process count and this process.

    Raises:
      ValueError: asked for, but JAX finds no launch to join (its reason, the field named).
    """
    env = os.environ
    if not (
        config.get("distributed", False)
        or env.get("JAX_COORDINATOR_ADDRESS")
        or env.get("JAX_NUM_PROCESSES")
    ):
        return
    kwargs = {}
    if env.get("JAX_NUM_PROCESSES"):
        kwargs["num_processes"] = int(env["JAX_NUM_PROCESSES"])
    if env.get("JAX_PROCESS_ID"):
        kwargs["process_id"] = int(env["JAX_PROCESS_ID"])
    try:
        jax.distributed.initialize(**kwargs)
    except ValueError as e:
        # JAX's own message (e.g. "coordinator_address should be defined.") names no field.
        asked = (
            f"distributed: got {config.get('distributed')!r}"
            if config.get("distributed", False)
            else "JAX_COORDINATOR_ADDRESS or JAX_NUM_PROCESSES set"
        )
        raise ValueError(
            f"{asked}, but jax.distributed.initialize() failed ({' '.join(str(e).split())}); "
            "expected a multi-process launch (SLURM, Open MPI, Kubernetes, or "
            "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID set), or "
            "distributed=False"
        ) from e


def _mesh(data: int, fsdp: int, devices) -> jax.sharding.Mesh:
    return jax.make_mesh(
        (data, fsdp), BATCH_AXES, axis_types=(AxisType.Explicit,) * 2, devices=devices
    )


def make_mesh(mesh_cfg) -> jax.sharding.Mesh:
    """A (data, fsdp) mesh with explicit axes.

    Args:
      mesh_cfg: `config.mesh`: data (-1 = every device not used by fsdp) and fsdp sizes.

    Returns:
      The mesh over the first data * fsdp devices (all of them with data = -1; a multi-process
      run must use all devices).

    Raises:
      ValueError: sizes that do not fit the devices.
    """
    n = jax.device_count()
    fsdp, data = int(mesh_cfg.fsdp), int(mesh_cfg.data)
    if fsdp < 1 or n % fsdp:
        raise ValueError(f"mesh.fsdp: got {mesh_cfg.fsdp}, expected a divisor of the {n} devices")
    if data == -1:
        data = n // fsdp
    if data < 1 or data * fsdp > n or (jax.process_count() > 1 and data * fsdp != n):
        raise ValueError(
            f"mesh: got data={mesh_cfg.data}, fsdp={mesh_cfg.fsdp} for {n} devices; expected "
            "data * fsdp <= the number of devices (== with several processes; data=-1 fills them)"
        )
    return _mesh(data, fsdp, jax.devices()[: data * fsdp])


def single_device_mesh() -> jax.sharding.Mesh:
    """A (1, 1) mesh on this process's first device: inference on a loaded model."""
    return _mesh(1, 1, jax.local_devices()[:1])


def fsdp_spec(shape, fsdp: int) -> P:
    """Sharding of one parameter: its largest axis divisible by the fsdp size, else replicated.

    Args:
      shape: the parameter's shape.
      fsdp: size of the "fsdp" mesh axis.

    Returns:
      A PartitionSpec naming "fsdp" on at most one axis.
    """
    if fsdp == 1 or not shape:
        return P()
    for axis in np.argsort(shape, kind="stable")[::-1]:
        if shape[axis] % fsdp == 0 and shape[axis] >= fsdp:
            spec = [None] * len(shape)
            spec[axis] = "fsdp"
            return P(*spec)
    return P()


def state_shardings(abstract_state, mesh):
    """NamedShardings of a train state: FSDP over "fsdp" (replicated over "data")."""
    fsdp = mesh.shape["fsdp"]
    shardings = jax.tree.map(
        lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp)), abstract_state
    )
    if "rng" in shardings:  # Key data must stay whole (a key's trailing dim is not shardable).
        shardings["rng"] = NamedSharding(mesh, P())
    return shardings


def replicate(tree):
    """`tree` resharded to whole copies on every device of its mesh (FSDP gather)."""
    return jax.tree.map(lambda x: jax.sharding.reshard(x, P()), tree)


@functools.cache  # Asked once per batch; constant for a (mesh, batch size).
def process_rows(mesh, batch_size: int) -> np.ndarray:
    """The rows of a global batch that this process's devices hold, in ascending order.

    Read from the batch sharding rather than assumed to be the process index's contiguous block:
    a mesh need not list its devices process by process.

    Args:
      mesh: the training mesh.
      batch_size: rows of the global batch.

    Returns:
      int64 [rows of this process]; all of them in a single-process run.
    """
    sharding = NamedSharding(mesh, P(BATCH_AXES))
    index = sharding.addressable_devices_indices_map((batch_size,))
    rows = {i for (s,) in index.values() for i in range(*s.indices(batch_size))}
    out = np.array(sorted(rows), np.int64)
    out.setflags(write=False)  # Shared by every call.
    return out


def global_batch(batch: dict, mesh) -> dict:
    """Host numpy batch (the global batch, identical on every process) -> arrays sharded over
    (data, fsdp) on the batch axis. Each process contributes the rows of its devices."""
    sharding = NamedSharding(mesh, P(BATCH_AXES))
    n = len(next(iter(batch.values())))
    # make_array_from_process_local_data places the local rows, in order, on this process's
    # slices of the global batch (sorted by position).
    rows = process_rows(mesh, n) if jax.process_count() > 1 else slice(None)
    return {
        k: jax.make_array_from_process_local_data(sharding, v[rows], v.shape)
        for k, v in batch.items()
    }


def prefetch(loader, mesh, size: int = PREFETCH):
    """Yields (device batch, tokens, loader state after it), `size` batches ahead.

    device_put is asynchronous, so the copy of the next batches overlaps the running step. The
    loader state travels with each batch: a checkpoint records the position of the last batch a
    step consumed, not of the prefetched ones.
    """
    queue = collections.deque()
    while True:
        while len(queue) < size:
            batch = next(loader)
            queue.append(
                (global_batch(batch, mesh), int(batch["lengths"].sum()), loader.get_state())
            )
        yield queue.popleft()
