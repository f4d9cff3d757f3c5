"""Steps: the model and optimizer of a config, the jitted train step, batched evaluation.

The loss itself is `_objective.objective_loss`; this module turns it into an optimizer step
(`train_step`, with per-group gradient norms and update/parameter ratios) and into a batched,
jitted pass over a set of cells (`map_batches`, shared by the validation loss and by embedding).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sigjax.data import CellLoader, TokenizedCells
from sigjax.model import CellEncoder, EncoderConfig
from sigjax.training._mesh import replicate, state_shardings
from sigjax.training._objective import objective_loss


def build_model(config, vocab_size: int) -> CellEncoder:
    """The CellEncoder of `config` with parameters from `config.seed`."""
    return CellEncoder(EncoderConfig.from_config(config, vocab_size), rngs=nnx.Rngs(config.seed))


def make_optimizer(tc, peak=None):
    """AdamW with linear warmup and cosine decay; clipping by global norm when grad_clip_norm > 0.

    The schedule is `peak * unit(step)`, `unit` the warmup-cosine schedule from 0 up to 1 and down
    to train.final_lr_fraction: linear in the peak, so the peak can be a traced value
    (`train_step(..., lr=)`) and runs that differ only in their learning rate compile the same
    program.

    Args:
      tc: `config.train`.
      peak: the peak learning rate (a float or a traced scalar); default tc.learning_rate.

    Returns:
      (optax transformation, learning-rate schedule).
    """
    unit = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=1.0,
        warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.num_steps, tc.warmup_steps + 1),
        end_value=tc.final_lr_fraction,
    )
    peak = tc.learning_rate if peak is None else peak

    def schedule(count):
        return peak * unit(count)

    tx = optax.adamw(schedule, b1=tc.b1, b2=tc.b2, eps=tc.eps, weight_decay=tc.weight_decay)
    if tc.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(tc.grad_clip_norm), tx)
    return tx, schedule


@dataclasses.dataclass
class Setup:
    """What the steps need besides the state: the model's graph, optimizer, shardings."""

    graphdef: nnx.GraphDef
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    shardings: dict
    abstract: dict


def make_setup(config, vocab_size: int, mesh) -> tuple[Setup, dict]:
    """Initial train state {params, opt_state, step, rng} sharded on the mesh, and its layout."""
    model = build_model(config, vocab_size)
    graphdef, params = nnx.split(model)
    tx, schedule = make_optimizer(config.train)

    def init(params):
        return {
            "params": params,
            "opt_state": tx.init(params),
            "step": jnp.zeros((), jnp.int32),
            # Raw key data (uint32) so that Orbax stores it like any array.
            "rng": jax.random.key_data(jax.random.key(config.seed)),
        }

    abstract = jax.eval_shape(init, params)
    shardings = state_shardings(abstract, mesh)
    state = jax.jit(init, out_shardings=shardings)(params)
    return Setup(graphdef, tx, schedule, shardings, abstract), state


def param_groups(tree: nnx.State, num_layers: int) -> dict[str, list]:
    """The leaves of a tree with the model's state structure (parameters, gradients, updates) by
    group: block i's attention (with its LayerNorm), block i's MLP (with its LayerNorm), the
    embeddings (gene, value, mask), and the head (final LayerNorm, output layer, expression
    decoder). The groups partition the leaves, so their norms combine to the global norm.

    Args:
      tree: an nnx.State (or a tree of the same structure, such as optax updates).
      num_layers: blocks in the model.

    Returns:
      {"block_{i}/attention", "block_{i}/mlp", "embed", "head"} -> list of arrays, in that order.
    """
    groups = {f"block_{i}/{part}": [] for i in range(num_layers) for part in ("attention", "mlp")}
    groups["embed"] = []
    groups["head"] = []
    for path, leaf in nnx.to_flat_state(tree):
        keys = [str(getattr(p, "key", p)) for p in path]
        if keys[0] == "blocks":
            # The attention, its norms and any per-branch scale name the attention; the rest of
            # a block is its MLP branch.
            part = "attention" if "attention" in keys[2] or "attn" in keys[2] else "mlp"
            groups[f"block_{keys[1]}/{part}"].append(getattr(leaf, "value", leaf))
        elif keys[0] in ("gene_embed", "value_embed", "mask_embed"):
            groups["embed"].append(getattr(leaf, "value", leaf))
        else:  # final_norm, head and the expression decoder.
            groups["head"].append(getattr(leaf, "value", leaf))
    return groups


def group_norms(tree: nnx.State, num_layers: int, prefix: str = "grad_norm") -> dict:
    """Global L2 norm of each group of `param_groups` (traceable).

    Args:
      tree: gradients (or parameters, updates) with the model's state structure.
      num_layers: blocks in the model.
      prefix: key prefix.

    Returns:
      {"{prefix}/block_{i}/attention", "{prefix}/block_{i}/mlp", "{prefix}/embed",
      "{prefix}/head"} -> scalar.
    """
    return {
        f"{prefix}/{name}": optax.global_norm(leaves)
        for name, leaves in param_groups(tree, num_layers).items()
    }


def update_ratios(updates: nnx.State, params: nnx.State, num_layers: int) -> dict:
    """Per group, ||update|| / ||parameters before the update|| (traceable): how fast each part
    of the network moves. A sub-block far below the others is frozen (`frozen_groups`).

    A group whose parameters are all zero has no scale to compare with; it reports its update
    norm unchanged (0 when it does not move), rather than a division by zero.

    Args:
      updates: the optimizer's updates, with the model's state structure.
      params: the parameters the updates apply to.
      num_layers: blocks in the model.

    Returns:
      {"update_ratio/block_{i}/attention", "update_ratio/block_{i}/mlp", "update_ratio/embed",
      "update_ratio/head"} -> scalar.
    """
    u = group_norms(updates, num_layers, "update_ratio")
    p = group_norms(params, num_layers, "update_ratio")
    return {k: jnp.where(p[k] > 0, u[k] / jnp.where(p[k] > 0, p[k], 1.0), u[k]) for k in u}


def all_finite(tree) -> jax.Array:
    """Boolean scalar: every floating-point element of `tree` is finite (traceable)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def train_step(setup: Setup, config, state, batch, lr=None):
    """One optimizer step and its metrics (norms before clipping; per-group gradient norms and
    update/parameter ratios, see `param_groups`).

    `lr`: the peak learning rate as an argument (a float32 scalar, traced under jit) instead of
    the constant in `setup`'s schedule: the compiled step is then the same program for every
    learning rate, so a grid's runs share their compilations (the persistent cache). The same
    schedule either way (`make_optimizer`).

    A step whose loss, gradient, update, new parameters or new optimizer state hold a non-finite
    value leaves params and optimizer state unchanged and reports ok=False; the loop stops on it,
    so no checkpoint ever holds such a state.
    """
    key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
    mask_key, dropout_key = jax.random.split(key)

    def loss_fn(params):
        # FSDP: parameters are sharded at rest and gathered for use; their gradients come back
        # sharded like them (the transpose of the gather).
        model = nnx.merge(setup.graphdef, replicate(params))
        return objective_loss(model, batch, mask_key, dropout_key if config.model.dropout else None)

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    tx, schedule = (setup.tx, setup.schedule) if lr is None else make_optimizer(config.train, lr)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    grad_norm = optax.global_norm(grads)
    # A finite gradient can still give a non-finite step (a NaN or overflowing learning rate,
    # overflowing Adam moments): the update and what it produces are checked too.
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & all_finite((updates, params, opt_state))
    new = {**state, "params": params, "opt_state": opt_state}
    new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
    new["step"] = state["step"] + 1
    metrics = {
        "train/loss": loss,
        "train/masked_loss": aux["masked"],
        "train/expression_loss": aux["expression"],
        "train/contrastive_loss": aux["contrastive"],
        "train/grad_norm": grad_norm,
        "train/param_norm": optax.global_norm(state["params"]),
        "train/update_norm": optax.global_norm(updates),
        "train/lr": schedule(state["step"]),
        "ok": ok,
        **group_norms(grads, config.model.num_layers),
        **update_ratios(updates, state["params"], config.model.num_layers),
    }
    return new, metrics


# --------------------------------------------------------------------------- batched evaluation
@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _apply(fn, args: tuple, graphdef, params, batch, key):
    # fn, args and graphdef are static: one compilation per (fn, args, model graph, batch shape),
    # reused by every later call, not one per call.
    return fn(nnx.merge(graphdef, params), batch, key, *args)


def map_batches(
    model: CellEncoder,
    cells: TokenizedCells,
    fn,
    args: tuple = (),
    *,
    batch_size: int,
    max_len: int,
    key: jax.Array | None = None,
) -> list:
    """`fn(model, batch, key_i, *args)` on every batch of `cells` in stored order, on the devices.

    The one evaluation loop: the validation loss and the embeddings both run through it.

    Args:
      model: a CellEncoder (parameters on one device, or on a mesh; batches go where they are,
        replicated on a mesh).
      cells: tokenised cells.
      fn: a module-level function (the jit cache is keyed by it) of (model, batch dict of
        `pad_batch`, PRNG key, *args).
      args: further static (hashable) arguments of fn.
      batch_size: cells per batch (the last batch may be smaller).
      max_len: the tokenisation's max_len (caps the padded length).
      key: base PRNG key; batch i gets fold_in(key, i). Default key(0).

    Returns:
      fn's output for each batch, on the host.
    """
    graphdef, params = nnx.split(model)
    sharding = getattr(jax.tree.leaves(params)[0], "sharding", None)
    put = (
        functools.partial(jax.device_put, device=NamedSharding(sharding.mesh, P()))
        if isinstance(sharding, NamedSharding)
        else jnp.asarray
    )
    loader = CellLoader(
        cells,
        batch_size=batch_size,
        seed=0,  # Unused: iter_epoch keeps the stored order.
        max_len=max_len,
        shuffle=False,
        drop_remainder=False,
    )
    base = jax.random.key(0) if key is None else key
    return [
        jax.device_get(
            _apply(
                fn,
                tuple(args),
                graphdef,
                params,
                {k: put(v) for k, v in batch.items()},
                jax.random.fold_in(base, i),
            )
        )
        for i, batch in enumerate(loader.iter_epoch())
    ]


def _loss_sums(model, batch, key):
    _, aux = objective_loss(model, batch, key)
    cells = batch["genes"].shape[0]
    return aux["masked"] * aux["count"], aux["count"], aux["expression"] * cells, cells


def evaluate_losses(model: CellEncoder, cells: TokenizedCells, config) -> dict:
    """Validation losses: the masked loss (mean over the masked tokens of all cells), the
    expression loss (mean over cells) and the objective that weighs them as training does.

    The masks are deterministic (from `config.seed` and the batch index), so two models are
    scored on the same targets. Runs without dropout. The contrastive term
    (model.contrastive_weight) is left out: it depends on the batch's composition (its negatives),
    so "val/loss" is the masked and expression terms only.

    Args:
      model: a CellEncoder (parameters on one device, or replicated on a mesh).
      cells: TokenizedCells.
      config: the run's config (data.eval_batch_size, data.max_len, seed).

    Returns:
      {"val/loss", "val/masked_loss", "val/expression_loss"} (floats; a term with nothing to
      average is 0.0).
    """
    sums = map_batches(
        model,
        cells,
        _loss_sums,
        batch_size=config.data.eval_batch_size,
        max_len=config.data.max_len,
        key=jax.random.key(config.seed + 1),
    )
    masked, count, expression, n = (float(sum(float(s[i]) for s in sums)) for i in range(4))
    masked, expression = masked / max(count, 1.0), expression / max(n, 1.0)
    cfg = model.config
    return {
        "val/loss": cfg.masked_weight * masked + cfg.expression_weight * expression,
        "val/masked_loss": masked,
        "val/expression_loss": expression,
    }


def evaluate_loss(model: CellEncoder, cells: TokenizedCells, config) -> float:
    """`evaluate_losses(...)["val/loss"]`: the validation objective."""
    return evaluate_losses(model, cells, config)["val/loss"]
