"""``DLFAConfig``: an encoder's config plus the fusion settings."""
from __future__ import annotations

import math
from numbers import Real
from typing import Optional, Union

from transformers import AutoConfig, BertConfig, PretrainedConfig

from dlfa_kernels import BACKENDS

DEFAULT_ENCODER = "bert-base-multilingual-cased"
POOLINGS = ("cls", "mean")
# sentence-transformers' CrossEncoder applies a sigmoid to a one-label model unless its config names another
# activation; a regression model's score is its raw output
CROSS_ENCODER_IDENTITY = {"activation_fn": "torch.nn.modules.linear.Identity"}


def check_gate_init(gate_init) -> Optional[float]:
    """None or "random" -> None (random AIF weights); a float p in (0, 1) -> p (start at p·X + (1 − p)·Y)."""
    if gate_init is None or gate_init == "random":
        return None
    if isinstance(gate_init, bool) or not isinstance(gate_init, Real) or not 0 < gate_init < 1 \
            or not math.isfinite(gate_init):
        raise ValueError(f"gate_init must be None, 'random' or a number strictly between 0 and 1, got {gate_init!r}")
    return float(gate_init)


def check_num_labels(num_labels) -> None:
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive int (1 = regression), got {num_labels!r}")


def check_fusion_settings(encoder: PretrainedConfig, fusion_layer, reduction, aif_backend) -> Optional[int]:
    """Validate the fusion settings against an encoder config; returns the layer index ("middle" resolved).

    Shared by :class:`DLFAConfig` and :func:`dlfa_models.apply_dlfa`.
    """
    if getattr(encoder, "is_encoder_decoder", False):
        raise ValueError(
            f"the encoder is an encoder-decoder model ({encoder.model_type!r}); DLFA fuses the hidden states "
            f"of an encoder-only model (BERT, XLM-R, DistilBERT, DeBERTa, ELECTRA, ...)"
        )
    layers = encoder.num_hidden_layers
    if fusion_layer == "middle":
        fusion_layer = layers // 2
    if fusion_layer is not None:
        if isinstance(fusion_layer, bool) or not isinstance(fusion_layer, int):
            raise TypeError(f"fusion_layer must be an int, None or 'middle', got {fusion_layer!r}")
        if not 0 <= fusion_layer <= layers:
            raise ValueError(
                f"fusion_layer={fusion_layer} is outside the encoder's hidden states "
                f"(0 = embeddings .. {layers} = last layer)"
            )
        if fusion_layer == layers:
            raise ValueError(
                f"fusion_layer={fusion_layer} is the last layer itself; pick a lower layer "
                f"(0..{layers - 1}) or None for the last-layer baseline"
            )
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
        raise ValueError(f"reduction must be a positive int, got {reduction!r}")
    if encoder.hidden_size % reduction:
        raise ValueError(
            f"the encoder's hidden_size ({encoder.hidden_size}) is not divisible by reduction ({reduction})"
        )
    if aif_backend not in BACKENDS:
        raise ValueError(f"aif_backend must be one of {BACKENDS}, got {aif_backend!r}")
    return fusion_layer


class DLFAConfig(PretrainedConfig):
    """Configuration of an encoder + AIF model.

    Args:
        encoder: the encoder's config (a ``PretrainedConfig`` or its dict with
            ``model_type``); any encoder-only model that returns hidden states.
            Default: a BERT-base config (mBERT's shape, English vocabulary size).
        fusion_layer: index into the encoder's ``hidden_states`` (0 = embeddings,
            ``num_hidden_layers`` = last) of the lower layer Y fused with the last
            layer X; ``None`` turns fusion off (the last-layer baseline);
            ``"middle"`` picks ``num_hidden_layers // 2``. Always written to
            ``config.json``; a saved DLFA config without it is refused on load.
        reduction: AIF bottleneck ratio r (hidden_size must divide by it).
        aif_backend: "auto", "triton" or "torch" (see ``dlfa_kernels.AIF``).
        gate_init: how the AIF starts. ``None`` (or ``"random"``): every AIF weight
            drawn from N(0, initializer_range), biases zero, so the gate starts near
            0.5 with some noise per token. A float p in (0, 1): up-projections zero
            and the local up-projection's bias logit(p), so that at step 0 the
            output is exactly p·X + (1 − p)·Y for every token (p → 1 starts from
            the last-layer baseline); the down-projections stay random, so
            gradients reach the up-projections from the first step.
        classifier_dropout: dropout before the head; None = the encoder's hidden dropout.
        sentence_pooling: "cls" (first token) or "mean" (over real tokens), for sentence heads.

    A config with one label and no ``problem_type`` is a regression one (STS): ``problem_type``
    is set to ``"regression"``, so ``pipeline("text-classification")`` returns the raw score, and
    ``sentence_transformers`` records the identity activation for sentence-transformers' ``CrossEncoder``.
    """

    model_type = "dlfa"
    sub_configs = {"encoder": AutoConfig}

    def __init__(
        self,
        encoder: Union[PretrainedConfig, dict, None] = None,
        fusion_layer: Union[int, str, None] = "middle",
        reduction: int = 4,
        aif_backend: str = "auto",
        gate_init: Union[float, str, None] = None,
        classifier_dropout: Optional[float] = None,
        sentence_pooling: str = "cls",
        **kwargs,
    ):
        if encoder is None:
            encoder = BertConfig()
        elif isinstance(encoder, dict):
            encoder = dict(encoder)
            if "model_type" not in encoder:
                raise ValueError("the encoder config dict needs a 'model_type' key (e.g. 'bert')")
            encoder = AutoConfig.for_model(encoder.pop("model_type"), **encoder)
        elif not isinstance(encoder, PretrainedConfig):
            raise TypeError(f"encoder must be a PretrainedConfig or a dict, got {type(encoder).__name__}")
        if isinstance(encoder, DLFAConfig):
            raise ValueError("the encoder config is itself a DLFA config; pass the plain encoder's config")
        if isinstance(getattr(encoder, "dlfa", None), dict):  # its AIF would come back inside this model's
            raise ValueError("the encoder config is of a model changed by apply_dlfa (it has 'dlfa' settings); "
                             "load that model with from_pretrained, or pass the plain encoder")
        self.encoder = encoder
        self.fusion_layer = check_fusion_settings(encoder, fusion_layer, reduction, aif_backend)
        if sentence_pooling not in POOLINGS:
            raise ValueError(f"sentence_pooling must be one of {POOLINGS}, got {sentence_pooling!r}")
        if "num_labels" in kwargs:
            check_num_labels(kwargs["num_labels"])
        self.reduction = reduction
        self.aif_backend = aif_backend
        self.gate_init = check_gate_init(gate_init)
        self.classifier_dropout = classifier_dropout
        self.sentence_pooling = sentence_pooling
        kwargs.setdefault("initializer_range", getattr(encoder, "initializer_range", 0.02))
        super().__init__(**kwargs)
        if self.problem_type is None and self.num_labels == 1:
            self.problem_type = "regression"
        if self.problem_type == "regression":
            given = getattr(self, "sentence_transformers", None) or {}
            self.sentence_transformers = {**CROSS_ENCODER_IDENTITY, **given}

    @property
    def hidden_size(self) -> int:
        """E, the encoder's hidden size (set it on ``config.encoder``)."""
        return self.encoder.hidden_size

    @hidden_size.setter
    def hidden_size(self, value: int) -> None:
        if value != self.encoder.hidden_size:
            raise ValueError(
                f"hidden_size is the encoder's ({self.encoder.hidden_size}); "
                f"change config.encoder.hidden_size instead of setting it to {value}"
            )

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """Load a saved DLFA config; one without ``fusion_layer`` (or a plain encoder's) is refused."""
        model_type = config_dict.get("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(
                f"this is a plain {model_type!r} config, not a DLFA one: build the model around the encoder with "
                f"DLFAFor<Task>.from_pretrained(<encoder>, fusion_layer=k) or DLFAConfig(encoder=<its config>, "
                f"fusion_layer=k)"
            )
        if "fusion_layer" in kwargs:  # through the constructor, so that it is validated
            config_dict = {**config_dict, "fusion_layer": kwargs.pop("fusion_layer")}
        if "fusion_layer" not in config_dict:
            raise ValueError(
                "this DLFA config has no 'fusion_layer', so which layer its AIF weights belong to is unknown; "
                "add \"fusion_layer\": <layer index> (or null for the baseline) to its config.json, "
                "or pass fusion_layer=... when loading"
            )
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def from_json_file(cls, json_file):
        return cls.from_dict(cls._dict_from_json_file(json_file))

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["encoder"] = self.encoder.to_dict()
        return out
