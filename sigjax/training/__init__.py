"""Training: the loop, its steps and objective, checkpoints and metrics, model loading."""

from sigjax.training._checkpoint import load_model
from sigjax.training._flags import unknown_config_field
from sigjax.training._mesh import fsdp_spec, make_mesh
from sigjax.training._metrics import MetricsWriter, frozen_groups, lagging_groups, read_metrics
from sigjax.training._objective import mask_values, masked_loss
from sigjax.training._steps import (
    build_model,
    evaluate_loss,
    evaluate_losses,
    group_norms,
    map_batches,
    param_groups,
    update_ratios,
)
from sigjax.training._train import NonFiniteError, train_and_evaluate

__all__ = [
    "MetricsWriter",
    "NonFiniteError",
    "build_model",
    "evaluate_loss",
    "evaluate_losses",
    "frozen_groups",
    "fsdp_spec",
    "group_norms",
    "lagging_groups",
    "load_model",
    "make_mesh",
    "map_batches",
    "mask_values",
    "masked_loss",
    "param_groups",
    "read_metrics",
    "train_and_evaluate",
    "unknown_config_field",
    "update_ratios",
]
