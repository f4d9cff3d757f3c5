"""EncoderConfig: the typed model configuration, built once from a training config."""

import dataclasses
import math

POOLINGS = ("cls", "mean")
DTYPES = ("float32", "bfloat16")
VALUE_ENCODINGS = ("binned", "continuous")
# Rematerialisation of each block in the backward pass (memory for compute; the values are the
# same): "none" keeps every activation, "full" recomputes the block, "dots" keeps matmul outputs.
REMATS = ("none", "full", "dots")
# What `CellEncoder.embed` returns: the pooled hidden state as it is ("pooled"), or mapped into
# the geometry of the expression decoder's output ("decoder"; see `CellEncoder.readout_map`).
READOUTS = ("pooled", "decoder")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Everything `CellEncoder` needs to build its layers.

    Fields with a default were added after the first release: the default is the behaviour runs
    had before the field existed, so a workdir whose config.json lacks it still loads and resumes
    as the same model. A new model field must come with such a default.

    Attributes:
      vocab_size: genes plus special tokens.
      n_bins: value bins of the binned encoding (`config.data.n_bins`).
      attention: "sigmoid" or "softmax".
      implementation: attention implementation (see `sigjax.model.attend`).
      num_layers: transformer blocks.
      num_heads: attention heads N.
      embed_dim: model width E.
      mlp_dim: MLP hidden width.
      dropout: dropout rate on both branches of every block.
      pooling: cell embedding: "cls" token or "mean" of the gene tokens.
      dtype: compute dtype name, "float32" or "bfloat16" (parameters stay float32).
      value_encoding: "binned" (embedding of bins) or "continuous" (MLP of log1p values).
      attention_output_norm: LayerNorm on the attention branch's output (hybrid norm).
      mask_prob: fraction of gene values hidden for the masked objective.
      masked_weight: weight of the masked-value loss in the objective.
      expression_weight: weight of the expression loss (the decoder from the cell embedding to
        every gene's value; 0 = no decoder, the first release's objective).
      expression_center: centre the expression loss over the batch's cells, gene by gene.
      remat: block rematerialisation in the backward pass, one of `REMATS` (speed and memory
        only: the same function, so a run may resume with another value).
      readout: the cell embedding `embed` returns, one of `READOUTS`: "pooled" (the pooled
        hidden state) or "decoder" (the same, mapped by `CellEncoder.readout_map` so that its
        distances are those of the decoder's predicted expression; needs the decoder). Acts at
        embedding time only, like `pooling` for training.
      contrastive_weight: weight of the contrastive (InfoNCE) term between two masked views of
        each cell's pooled embedding (0 = off, the objective before it existed).
      contrastive_temperature: temperature of that term's similarity logits (> 0).
    """

    vocab_size: int
    n_bins: int
    attention: str
    implementation: str | None
    num_layers: int
    num_heads: int
    embed_dim: int
    mlp_dim: int
    dropout: float
    pooling: str
    dtype: str
    value_encoding: str
    attention_output_norm: bool = False
    mask_prob: float = 0.15
    masked_weight: float = 1.0
    expression_weight: float = 0.0
    expression_center: bool = False
    remat: str = "none"
    readout: str = "pooled"
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.1

    def __post_init__(self):
        from sigjax.model._layers import check_attention

        check_attention(self.attention, self.implementation)
        for name, value, choices in (
            ("pooling", self.pooling, POOLINGS),
            ("dtype", self.dtype, DTYPES),
            ("value_encoding", self.value_encoding, VALUE_ENCODINGS),
            ("remat", self.remat, REMATS),
            ("readout", self.readout, READOUTS),
        ):
            if value not in choices:
                raise ValueError(
                    f"model.{name}: got {value!r}, expected one of {', '.join(map(repr, choices))}"
                )
        # Sizes fail here, not as a shape error deep in Flax (0) or a model silently built with
        # no block at all (num_layers < 0).
        for name in ("num_layers", "num_heads", "embed_dim", "mlp_dim"):
            if not int(getattr(self, name)) >= 1:
                raise ValueError(
                    f"model.{name}: got {getattr(self, name)!r}, expected an integer >= 1"
                )
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"model.embed_dim: got {self.embed_dim}, expected a multiple of "
                f"model.num_heads={self.num_heads}"
            )
        if not int(self.n_bins) >= 2:
            raise ValueError(f"data.n_bins: got {self.n_bins!r}, expected >= 2 (bin 0 is reserved)")
        # A rate of 1 drops everything and rescales by 1 / (1 - rate): NaN from the first step.
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout: got {self.dropout!r}, expected a value in [0, 1)")
        for name in ("masked_weight", "expression_weight", "contrastive_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"model.{name}: got {value}, expected a finite number >= 0")
        t = self.contrastive_temperature
        if not (math.isfinite(t) and t > 0):
            raise ValueError(
                f"model.contrastive_temperature: got {t}, expected a finite number > 0"
            )
        if self.readout == "decoder" and not self.expression_weight > 0:
            raise ValueError(
                "model.readout: got 'decoder' with model.expression_weight=0 (no decoder); "
                "expected 'pooled', or expression_weight > 0"
            )
        if not self.masked_weight + self.expression_weight > 0:
            raise ValueError(
                "model.masked_weight, model.expression_weight: got both 0, expected a positive "
                "weight on at least one objective"
            )

    @classmethod
    def added_defaults(cls) -> dict:
        """{field: default} of the fields added after the first release (see the class doc)."""
        return {
            f.name: f.default
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING
        }

    @classmethod
    def from_config(cls, config, vocab_size: int) -> "EncoderConfig":
        """The encoder of a training config (`config.model` and `config.data.n_bins`).

        Args:
          config: a training ConfigDict (configs/default.py), or the dict of a saved config.json.
          vocab_size: tokens of the run's vocabulary (`Vocab.size`).

        Returns:
          EncoderConfig; fields the config predates take their default.

        Raises:
          ValueError: a required field missing, or a value outside its choices.
        """
        model = dict(config["model"])
        fields = {f.name for f in dataclasses.fields(cls)} - {"vocab_size", "n_bins"}
        missing = sorted(fields - model.keys() - cls.added_defaults().keys())
        if missing:
            raise ValueError(
                f"config.model: got fields {sorted(model)}, missing {missing}; expected every "
                "field of EncoderConfig"
            )
        return cls(
            vocab_size=int(vocab_size),
            n_bins=int(config["data"]["n_bins"]),
            **{k: v for k, v in model.items() if k in fields},
        )
