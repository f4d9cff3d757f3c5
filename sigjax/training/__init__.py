"""Training: the Optax/Orbax loop, the masked-expression objective, model loading."""

from sigjax.training._objective import group_norms, mask_values, masked_loss
from sigjax.training._train import (
    NonFiniteError,
    evaluate_loss,
    fsdp_spec,
    load_model,
    make_mesh,
    train_and_evaluate,
)

__all__ = [
    "NonFiniteError",
    "evaluate_loss",
    "fsdp_spec",
    "group_norms",
    "load_model",
    "make_mesh",
    "mask_values",
    "masked_loss",
    "train_and_evaluate",
]
