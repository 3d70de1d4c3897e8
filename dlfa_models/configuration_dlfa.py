"""``DLFAConfig``: an encoder's config plus the fusion settings."""
from __future__ import annotations

from typing import Optional, Union

from transformers import AutoConfig, BertConfig, PretrainedConfig

DEFAULT_ENCODER = "bert-base-multilingual-cased"
POOLINGS = ("cls", "mean")


class DLFAConfig(PretrainedConfig):
    """Configuration of an encoder + AIF model.

    Args:
        encoder: the encoder's config (a ``PretrainedConfig`` or its dict with
            ``model_type``); any BERT-like encoder that returns hidden states.
            Default: a BERT-base config (mBERT's shape, English vocabulary size).
        fusion_layer: index into the encoder's ``hidden_states`` (0 = embeddings,
            ``num_hidden_layers`` = last) of the lower layer Y fused with the last
            layer X; ``None`` turns fusion off (the last-layer baseline);
            ``"middle"`` picks ``num_hidden_layers // 2``.
        reduction: AIF bottleneck ratio r (hidden_size must divide by it).
        aif_backend: "auto", "triton" or "torch" (see ``dlfa_kernels.AIF``).
        classifier_dropout: dropout before the head; None = the encoder's hidden dropout.
        sentence_pooling: "cls" (first token) or "mean" (over real tokens), for sentence heads.
    """

    model_type = "dlfa"
    sub_configs = {"encoder": AutoConfig}

    def __init__(
        self,
        encoder: Union[PretrainedConfig, dict, None] = None,
        fusion_layer: Union[int, str, None] = "middle",
        reduction: int = 4,
        aif_backend: str = "auto",
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
        self.encoder = encoder
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
        if aif_backend not in ("auto", "triton", "torch"):
            raise ValueError(f"aif_backend must be 'auto', 'triton' or 'torch', got {aif_backend!r}")
        if sentence_pooling not in POOLINGS:
            raise ValueError(f"sentence_pooling must be one of {POOLINGS}, got {sentence_pooling!r}")
        self.fusion_layer = fusion_layer
        self.reduction = reduction
        self.aif_backend = aif_backend
        self.classifier_dropout = classifier_dropout
        self.sentence_pooling = sentence_pooling
        kwargs.setdefault("initializer_range", getattr(encoder, "initializer_range", 0.02))
        super().__init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["encoder"] = self.encoder.to_dict()
        return out
