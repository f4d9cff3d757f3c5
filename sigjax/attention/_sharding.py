"""Running per-shard attention code (Pallas kernels, cuDNN calls) on mesh-sharded inputs."""

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def explicit_sharding(x):
    """`x`'s sharding on a non-empty explicit mesh (under `jax.set_mesh`), else None."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    return None if mesh is None or mesh.empty else sharding


def _shards(sharding) -> int:
    """How many pieces `sharding`'s spec splits an array into (1: none, or a 1-device mesh)."""
    shards = 1
    for axes in sharding.spec:
        for axis in (axes,) if isinstance(axes, str) else axes or ():
            shards *= sharding.mesh.shape[axis]
    return shards


def is_sharded(x) -> bool:
    """Whether `x` is split over more than one device by its explicit sharding (an axis of a
    one-device mesh, as single-GPU training has, splits nothing)."""
    sharding = explicit_sharding(x)
    return sharding is not None and _shards(sharding) > 1


def _axis(spec, dim: int):
    return spec[dim] if dim < len(spec) else None


def _batch_and_heads(spec) -> P:
    """The spec of a [B, L, N, H] array split like `spec`'s batch (B) and head (N) axes only."""
    return P(_axis(spec, 0), None, _axis(spec, 2), None)


def like_query(query, *arrays) -> tuple:
    """[B, S, N, H] `arrays` resharded to the query's batch and head axes when the query has an
    explicit sharding, else unchanged. XLA's attention einsums need the batch dims (B, N) of both
    operands sharded alike (jax 0.11 raises ShardingTypeError otherwise, 0.10 did not)."""
    sharding = explicit_sharding(query)
    if sharding is None:
        return arrays
    target = NamedSharding(sharding.mesh, _batch_and_heads(sharding.spec))
    return tuple(jax.reshard(x, target) for x in arrays)


def run_per_shard(
    fn,
    query,
    qkv: tuple,
    per_batch: tuple,
    *,
    what: str,
    one_device_direct=False,
    always_shard_map=False,
):
    """fn(*qkv, *per_batch) directly, or under `jax.shard_map` when `query` is sharded.

    The query's explicit sharding decides: batch (B) and head (N) axes are split across devices,
    each device runs `fn` on its slice. `qkv` are [B, *, N, H] arrays, `per_batch` arrays lead with
    B. Sharding along tokens or head dim is refused. one_device_direct: on a mesh whose axes split
    nothing (one device), `fn` runs without shard_map, on the arrays with those axes dropped from
    their type (the Pallas kernels; cuDNN calls keep shard_map there, as measured).
    always_shard_map: under shard_map whenever the query has an explicit sharding, even one that
    splits nothing (Pallas-Triton's interpreter fails on arrays typed with an explicit mesh).

    Raises:
      ValueError: query sharded along T or H.
    """
    sharding = explicit_sharding(query)
    if sharding is None:
        return fn(*qkv, *per_batch)
    if not always_shard_map and not any(a is not None for a in sharding.spec):
        return fn(*qkv, *per_batch)
    if one_device_direct and not always_shard_map and _shards(sharding) == 1:
        # E.g. single-GPU training on a 1x1 mesh. Pallas kernels take arrays without a sharding
        # in their type, so the (trivial) axes are dropped around them.
        one = NamedSharding(sharding.mesh, P())
        out = fn(*(jax.reshard(x, one) for x in (*qkv, *per_batch)))
        return jax.reshard(out, sharding)
    spec, mesh = sharding.spec, sharding.mesh
    for dim, name in ((1, "tokens (T)"), (3, "head dim (H)")):
        if _axis(spec, dim) is not None:
            raise ValueError(
                f"query: sharded along {name} over mesh axes {spec[dim]!r}, expected sharding "
                f"along batch (B) and heads (N) only for {what}"
            )
    qkv_spec = _batch_and_heads(spec)
    in_specs = (
        *(qkv_spec for _ in qkv),
        *(P(_axis(spec, 0), *([None] * (x.ndim - 1))) for x in per_batch),
    )
    # Arrays made without a sharding (default lengths, a broadcast bias) or sharded unlike the
    # query are resharded to what each shard needs; a no-op for those already laid out so.
    args = [
        jax.reshard(x, NamedSharding(mesh, spec))
        for x, spec in zip((*qkv, *per_batch), in_specs, strict=True)
    ]
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=qkv_spec, check_vma=False)(
        *args
    )
