"""Encoder + AIF as Hugging Face models: the fused encoder and its task heads.

The encoder's last layer X and the lower layer ``config.fusion_layer`` Y are fused
by ``dlfa_kernels.AIF``; with ``fusion_layer=None`` the last layer passes through
unchanged (the baseline), so both settings share every line of code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from dlfa_kernels import AIF, masked_mean

from .configuration_dlfa import DEFAULT_ENCODER, DLFAConfig
from .encoders import resolve_encoder


@dataclass
class DLFAModelOutput(ModelOutput):
    """last_hidden_state: (B, T, E) fused states; gate_mean: (B,) mean gate over real tokens and E."""

    last_hidden_state: Optional[Tensor] = None
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None
    gate_mean: Optional[Tensor] = None


@dataclass
class DLFASequenceClassifierOutput(ModelOutput):
    """loss: scalar; logits: (B, num_labels); gate_mean: (B,) when asked for."""

    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None
    gate_mean: Optional[Tensor] = None


@dataclass
class DLFATokenClassifierOutput(ModelOutput):
    """loss: scalar; logits: (B, T, num_labels); gate_mean: (B,) when asked for."""

    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None
    gate_mean: Optional[Tensor] = None


def _build_encoder(config) -> nn.Module:
    """The encoder without its pooler (unused; an unused parameter also upsets DDP)."""
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:  # encoders that have no pooler take no such argument
        return AutoModel.from_config(config)


class DLFAPreTrainedModel(PreTrainedModel):
    config_class = DLFAConfig
    base_model_prefix = "dlfa"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AIF"]

    @classmethod
    def from_encoder(cls, name_or_path: str = DEFAULT_ENCODER, fusion_layer="middle", **config_kwargs):
        """Build this model around pretrained encoder weights (hub name or local folder).

        ``fusion_layer`` and ``config_kwargs`` go to :class:`DLFAConfig`; the AIF and the
        head start freshly initialised, the encoder holds the pretrained weights.
        """
        name_or_path = resolve_encoder(name_or_path)
        encoder_config = AutoConfig.from_pretrained(name_or_path)
        model = cls(DLFAConfig(encoder=encoder_config, fusion_layer=fusion_layer, **config_kwargs))
        try:
            pretrained = AutoModel.from_pretrained(name_or_path, add_pooling_layer=False)
        except TypeError:
            pretrained = AutoModel.from_pretrained(name_or_path)
        base = model if isinstance(model, DLFAModel) else model.dlfa
        base.encoder.load_state_dict(pretrained.state_dict())
        return model


class DLFAModel(DLFAPreTrainedModel):
    """Encoder + AIF. ``forward`` returns the fused hidden states (B, T, E)."""

    def __init__(self, config: DLFAConfig):
        super().__init__(config)
        self.encoder = _build_encoder(config.encoder)
        self.aif = (
            None if config.fusion_layer is None
            else AIF(config.hidden_size, config.reduction, backend=config.aif_backend)
        )
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    def forward(
        self,
        input_ids: Optional[Tensor] = None,
        attention_mask: Optional[Tensor] = None,
        token_type_ids: Optional[Tensor] = None,
        position_ids: Optional[Tensor] = None,
        inputs_embeds: Optional[Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_gate_stats: bool = False,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> DLFAModelOutput:
        """input_ids: (B, T); attention_mask: (B, T). gate_mean (B,) is filled when
        ``output_gate_stats`` is set and fusion is on."""
        encoder_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        if token_type_ids is not None:
            encoder_inputs["token_type_ids"] = token_type_ids
        if position_ids is not None:
            encoder_inputs["position_ids"] = position_ids
        fusing = self.aif is not None
        out = self.encoder(
            **encoder_inputs,
            output_hidden_states=fusing or bool(output_hidden_states),
            output_attentions=bool(output_attentions),
            return_dict=True,
        )
        x = out.last_hidden_state
        gate_mean = None
        if fusing:
            y = out.hidden_states[self.config.fusion_layer]
            fused = self.aif(x, y, attention_mask)
            if output_gate_stats:
                gate_mean = _gate_mean(self.aif, x, y, attention_mask)
        else:
            fused = x
        return DLFAModelOutput(
            last_hidden_state=fused,
            hidden_states=out.hidden_states if output_hidden_states else None,
            attentions=out.attentions if output_attentions else None,
            gate_mean=gate_mean,
        )


@torch.no_grad()
def _gate_mean(aif: AIF, x: Tensor, y: Tensor, attention_mask: Optional[Tensor]) -> Tensor:
    """Mean of the gate M over real tokens and E: (B,). 1 = all from the last layer."""
    dtype = aif.local_down.weight.dtype
    return masked_mean(aif.gate(x.to(dtype), y.to(dtype), attention_mask).float(), attention_mask).mean(-1)


def _pool(hidden: Tensor, attention_mask: Optional[Tensor], how: str) -> Tensor:
    """(B, T, E) -> (B, E): the first token, or the mean over real tokens."""
    return hidden[:, 0] if how == "cls" else masked_mean(hidden, attention_mask)


class _DLFAWithHead(DLFAPreTrainedModel):
    """Encoder + AIF (``self.dlfa``), dropout, and a linear head over E features."""

    def __init__(self, config: DLFAConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dlfa = DLFAModel(config)
        p = config.classifier_dropout
        self.dropout = nn.Dropout(getattr(config.encoder, "hidden_dropout_prob", 0.1) if p is None else p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class DLFAForSequenceClassification(_DLFAWithHead):
    """Sentence(-pair) head: ``num_labels == 1`` is regression (STS, MSE loss), more is
    classification (XNLI, PAWS-X; cross-entropy), as Hugging Face heads do."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels: Optional[Tensor] = None, output_hidden_states=None,
                output_attentions=None, output_gate_stats: bool = False, return_dict=None,
                **kwargs) -> DLFASequenceClassifierOutput:
        """labels: (B,) float scores (regression) or int class ids; logits: (B, num_labels)."""
        out = self.dlfa(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                        output_hidden_states, output_attentions, output_gate_stats)
        pooled = _pool(out.last_hidden_state, attention_mask, self.config.sentence_pooling)
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else self._loss(logits, labels)
        return DLFASequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions, out.gate_mean)

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        problem = self.config.problem_type
        if problem is None:
            if self.num_labels == 1:
                problem = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
        if problem == "regression":
            return nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
        if problem == "single_label_classification":
            return nn.functional.cross_entropy(logits.float().view(-1, self.num_labels), labels.view(-1))
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())


class DLFAForTokenClassification(_DLFAWithHead):
    """Token tagging head (NER, POS): cross-entropy over tokens, label -100 ignored."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels: Optional[Tensor] = None, output_hidden_states=None,
                output_attentions=None, output_gate_stats: bool = False, return_dict=None,
                **kwargs) -> DLFATokenClassifierOutput:
        """labels: (B, T) class ids, -100 = ignored; logits: (B, T, num_labels)."""
        out = self.dlfa(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                        output_hidden_states, output_attentions, output_gate_stats)
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float().view(-1, self.num_labels), labels.view(-1),
                                               ignore_index=-100)
        return DLFATokenClassifierOutput(loss, logits, out.hidden_states, out.attentions, out.gate_mean)
