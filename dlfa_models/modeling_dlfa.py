"""Encoder + AIF as Hugging Face models: the fused encoder and its task heads.

The encoder's last layer X and the lower layer ``config.fusion_layer`` Y are fused
by ``dlfa_kernels.AIF``; with ``fusion_layer=None`` the last layer passes through
unchanged (the baseline), so both settings share every line of code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from dlfa_kernels import AIF, masked_mean

from .configuration_dlfa import DEFAULT_ENCODER, DLFAConfig, check_num_labels
from .encoders import resolve_encoder
from .gate_init import init_gate
from .gate_stats import gate_statistics

# from_pretrained's arguments that say where and how to fetch files (not model settings)
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")


@dataclass
class DLFAModelOutput(ModelOutput):
    """last_hidden_state: (B, T, E) fused states. With ``output_gate_stats`` (and fusion on) the
    gate statistics of ``dlfa_models.gate_stats``: gate_mean, gate_token_sum, gate_token_sq_sum,
    gate_token_count (B,) and gate_hist (B, 10)."""

    last_hidden_state: Optional[Tensor] = None
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None
    gate_mean: Optional[Tensor] = None
    gate_token_sum: Optional[Tensor] = None
    gate_token_sq_sum: Optional[Tensor] = None
    gate_token_count: Optional[Tensor] = None
    gate_hist: Optional[Tensor] = None


@dataclass
class _DLFAHeadOutput(ModelOutput):
    """loss: scalar; logits: the head's; gate statistics as in :class:`DLFAModelOutput`."""

    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None
    gate_mean: Optional[Tensor] = None
    gate_token_sum: Optional[Tensor] = None
    gate_token_sq_sum: Optional[Tensor] = None
    gate_token_count: Optional[Tensor] = None
    gate_hist: Optional[Tensor] = None


class DLFASequenceClassifierOutput(_DLFAHeadOutput):
    """logits: (B, num_labels)."""


class DLFATokenClassifierOutput(_DLFAHeadOutput):
    """logits: (B, T, num_labels)."""


def _as_requested(output: ModelOutput, return_dict: Optional[bool], config) -> ModelOutput | tuple:
    """The output object, or its non-None fields as a tuple when ``return_dict`` (or the config) says False."""
    return output if (config.return_dict if return_dict is None else return_dict) else output.to_tuple()


def _build_encoder(config) -> nn.Module:
    """The encoder without its pooler (unused; an unused parameter also upsets DDP)."""
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:  # encoders that have no pooler take no such argument
        return AutoModel.from_config(config)


def check_local_path(name_or_path) -> None:
    """Refuse a name that is clearly a local path (absolute, ./, ../, ~, a/b/c) but does not exist,
    instead of letting the hub client complain about its repo id format."""
    path = os.fspath(name_or_path)
    if os.path.exists(path):
        return
    if os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1 or "\\" in path:
        raise FileNotFoundError(f"the encoder folder {path!r} does not exist")


class DLFAPreTrainedModel(PreTrainedModel):
    config_class = DLFAConfig
    base_model_prefix = "dlfa"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AIF"]

    def _init_weights(self, module):
        super()._init_weights(module)
        aif = getattr(self, "aif", None)
        # Hugging Face initialises module by module and skips those without parameters of their
        # own (as AIF is), so the gate is set whenever one of the up-projections is initialised;
        # after the second, both hold the gate init whatever the order.
        if aif is not None and self.config.gate_init is not None and module in (aif.local_up, aif.global_up):
            init_gate(aif, self.config.gate_init)

    @classmethod
    def from_encoder(cls, name_or_path: str = DEFAULT_ENCODER, fusion_layer="middle", **kwargs):
        """Build this model around pretrained encoder weights (hub name or local folder).

        ``fusion_layer`` and the other keyword arguments go to :class:`DLFAConfig`
        (``num_labels``, ``gate_init``, ...), except the hub ones (``revision``,
        ``cache_dir``, ``token``, ...) and ``dtype``. The AIF and the head start freshly
        initialised, the encoder holds the pretrained weights.
        """
        name_or_path = resolve_encoder(name_or_path)
        check_local_path(name_or_path)
        hub = {k: kwargs.pop(k) for k in HUB_KWARGS if k in kwargs}
        dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
        encoder_config = AutoConfig.from_pretrained(name_or_path, **hub)
        if isinstance(encoder_config, DLFAConfig):
            raise ValueError(f"{name_or_path!r} is already a DLFA model: load it with from_pretrained")
        model = cls(DLFAConfig(encoder=encoder_config, fusion_layer=fusion_layer, **kwargs))
        try:
            pretrained = AutoModel.from_pretrained(name_or_path, add_pooling_layer=False, **hub)
        except TypeError:
            pretrained = AutoModel.from_pretrained(name_or_path, **hub)
        base = model if isinstance(model, DLFAModel) else model.dlfa
        base.encoder.load_state_dict(pretrained.state_dict())
        if dtype is not None and dtype != "auto":
            model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """A saved DLFA model as usual; a plain encoder (hub name or folder) is routed to
        :meth:`from_encoder`, so ``DLFAForSequenceClassification.from_pretrained(
        "bert-base-multilingual-cased", fusion_layer=8, num_labels=3)`` builds the DLFA model
        around it (``fusion_layer`` defaults to "middle" there, as in ``from_encoder``)."""
        if kwargs.get("config") is None and not model_args and pretrained_model_name_or_path is not None:
            pretrained_model_name_or_path = resolve_encoder(pretrained_model_name_or_path)
            check_local_path(pretrained_model_name_or_path)
            hub = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
            config_dict, _ = PretrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub)
            if config_dict.get("model_type") != DLFAConfig.model_type:
                kwargs.pop("config", None)
                return cls.from_encoder(pretrained_model_name_or_path, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)


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
    ) -> DLFAModelOutput | tuple:
        """input_ids: (B, T); attention_mask: (B, T). With ``output_gate_stats`` and fusion on, the
        gate statistics fields are filled (see :class:`DLFAModelOutput`)."""
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
        stats = {}
        if fusing:
            y = out.hidden_states[self.config.fusion_layer]
            fused = self.aif(x, y, attention_mask)
            if output_gate_stats:
                stats = gate_statistics(self.aif, x, y, attention_mask)
        else:
            fused = x
        output = DLFAModelOutput(
            last_hidden_state=fused,
            hidden_states=out.hidden_states if output_hidden_states else None,
            attentions=out.attentions if output_attentions else None,
            **stats,
        )
        return _as_requested(output, return_dict, self.config)


def _pool(hidden: Tensor, attention_mask: Optional[Tensor], how: str) -> Tensor:
    """(B, T, E) -> (B, E): the first token, or the mean over real tokens."""
    return hidden[:, 0] if how == "cls" else masked_mean(hidden, attention_mask)


class _DLFAWithHead(DLFAPreTrainedModel):
    """Encoder + AIF (``self.dlfa``), dropout, and a linear head over E features."""

    def __init__(self, config: DLFAConfig):
        check_num_labels(config.num_labels)
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dlfa = DLFAModel(config)
        p = config.classifier_dropout
        self.dropout = nn.Dropout(getattr(config.encoder, "hidden_dropout_prob", 0.1) if p is None else p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _fused(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
               output_hidden_states, output_attentions, output_gate_stats) -> DLFAModelOutput:
        return self.dlfa(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                         output_hidden_states, output_attentions, output_gate_stats, return_dict=True)

    def _output(self, cls, loss, logits, fused: DLFAModelOutput, return_dict):
        """The head's output: loss, logits, then every filled field of the fused model's but its states."""
        rest = {k: v for k, v in fused.items() if k != "last_hidden_state"}
        return _as_requested(cls(loss=loss, logits=logits, **rest), return_dict, self.config)


class DLFAForSequenceClassification(_DLFAWithHead):
    """Sentence(-pair) head: ``num_labels == 1`` is regression (STS, MSE loss), more is
    classification (XNLI, PAWS-X; cross-entropy), as Hugging Face heads do."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels: Optional[Tensor] = None, output_hidden_states=None,
                output_attentions=None, output_gate_stats: bool = False, return_dict=None,
                **kwargs) -> DLFASequenceClassifierOutput | tuple:
        """labels: (B,) float scores (regression) or int class ids; logits: (B, num_labels)."""
        out = self._fused(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                          output_hidden_states, output_attentions, output_gate_stats)
        pooled = _pool(out.last_hidden_state, attention_mask, self.config.sentence_pooling)
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else self._loss(logits, labels)
        return self._output(DLFASequenceClassifierOutput, loss, logits, out, return_dict)

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
                **kwargs) -> DLFATokenClassifierOutput | tuple:
        """labels: (B, T) class ids, -100 = ignored; logits: (B, T, num_labels)."""
        out = self._fused(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                          output_hidden_states, output_attentions, output_gate_stats)
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float().view(-1, self.num_labels), labels.view(-1),
                                               ignore_index=-100)
        return self._output(DLFATokenClassifierOutput, loss, logits, out, return_dict)
