"""The DLFA bi-encoder: each sentence of a pair encoded alone (encoder + AIF), pooled, compared by cosine.

Settings it reads from :class:`DLFAConfig` (extra config fields, saved in ``config.json``):

- ``sentence_pooling``: "mean" or "cls", as the cross-encoder's (``from_encoder`` defaults it to "mean");
- ``similarity_loss``: "cosine" (MSE of the cosine against the label, sentence-transformers'
  ``CosineSimilarityLoss``; the default) or "cosent" (``CoSENTLoss``, scale 20);
- ``sentence_prompt``: the text put before each sentence by whoever tokenizes ("" for none;
  ``from_encoder`` takes it from :func:`dlfa_models.encoders.sentence_prompt`, e.g. e5's ``query: ``);
- ``normalize_embeddings``, ``max_seq_length``: what the sentence-transformers files say (see
  :mod:`dlfa_models.sentence_transformers_compat`).

The per-sentence encoder is a :class:`DLFAModel` (``self.dlfa``), so a saved bi-encoder also loads with
``AutoModel`` as a ``DLFAModel`` whose fused states are the bi-encoder's per-side states.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor
from transformers.utils import ModelOutput

from .configuration_dlfa import DEFAULT_ENCODER, DLFAConfig
from .encoders import sentence_prompt
from .gate_stats import GATE_STAT_FIELDS
from .modeling_dlfa import DLFAModel, DLFAModelOutput, DLFAPreTrainedModel, _as_requested, _pool
from .sentence_transformers_compat import check_sentence_transformers_settings, write_sentence_transformers_files
from .similarity_losses import SIMILARITY_LOSSES, similarity_loss

DEFAULT_SIMILARITY_LOSS = "cosine"


@dataclass
class DLFASentenceSimilarityOutput(ModelOutput):
    """loss: scalar; logits: (B,) cosine of the two sentences' embeddings; embeddings, embeddings_b: (B, E)
    pooled embeddings of the first and second sentences. With ``output_gate_stats`` (and fusion on) the gate
    statistics of ``dlfa_models.gate_stats`` per side: ``gate_*`` of the first sentences, ``gate_*_b`` of
    the second (gate_mean, gate_token_sum, gate_token_sq_sum, gate_token_count (B,), gate_hist (B, 10))."""

    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    embeddings: Optional[Tensor] = None
    embeddings_b: Optional[Tensor] = None
    gate_mean: Optional[Tensor] = None
    gate_token_sum: Optional[Tensor] = None
    gate_token_sq_sum: Optional[Tensor] = None
    gate_token_count: Optional[Tensor] = None
    gate_hist: Optional[Tensor] = None
    gate_mean_b: Optional[Tensor] = None
    gate_token_sum_b: Optional[Tensor] = None
    gate_token_sq_sum_b: Optional[Tensor] = None
    gate_token_count_b: Optional[Tensor] = None
    gate_hist_b: Optional[Tensor] = None


def check_similarity_labels(labels: Tensor, batch_size: int) -> Tensor:
    """labels: (B,) gold similarities in [0, 1] -> float32 (B,); ValueError for another shape or a value outside."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a tensor of shape ({batch_size},), got {type(labels).__name__}")
    if labels.shape != (batch_size,):
        raise ValueError(f"labels must have shape ({batch_size},) (one similarity per pair), got {tuple(labels.shape)}")
    if labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be real numbers in [0, 1], got dtype {labels.dtype}")
    labels = labels.float()
    outside = ~((labels >= 0) & (labels <= 1))  # NaN is outside too
    if outside.any():
        raise ValueError(f"labels must be similarities in [0, 1] (scale gold scores first, e.g. STS-B's 0-5 by 1/5); "
                         f"got {labels[outside][0].item()!r}")
    return labels


class DLFAForSentenceSimilarity(DLFAPreTrainedModel):
    """Siamese sentence-pair model: ``logits`` is the cosine of the two sentences' pooled embeddings."""

    def __init__(self, config: DLFAConfig):
        loss = getattr(config, "similarity_loss", DEFAULT_SIMILARITY_LOSS)
        if loss not in SIMILARITY_LOSSES:
            raise ValueError(f"similarity_loss must be one of {SIMILARITY_LOSSES}, got {loss!r}")
        config.similarity_loss = loss
        check_sentence_transformers_settings(config)
        super().__init__(config)
        self.dlfa = DLFAModel(config)
        self.post_init()

    @classmethod
    def from_encoder(cls, name_or_path: str = DEFAULT_ENCODER, fusion_layer="middle", **kwargs):
        """As :meth:`DLFAPreTrainedModel.from_encoder`, with mean pooling and the encoder's sentence prompt
        (:func:`dlfa_models.encoders.sentence_prompt`) unless given."""
        kwargs.setdefault("sentence_pooling", "mean")
        kwargs.setdefault("sentence_prompt", sentence_prompt(name_or_path))
        return super().from_encoder(name_or_path, fusion_layer=fusion_layer, **kwargs)

    def get_input_embeddings(self):
        return self.dlfa.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.dlfa.set_input_embeddings(value)

    def _embed(self, input_ids, attention_mask, token_type_ids, output_gate_stats) -> tuple[Tensor, DLFAModelOutput]:
        """One side, alone: (N, T) ids -> pooled (N, E) and the fused model's output."""
        out = self.dlfa(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        output_gate_stats=output_gate_stats, return_dict=True)
        return _pool(out.last_hidden_state, attention_mask, self.config.sentence_pooling), out

    def encode(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
               token_type_ids: Optional[Tensor] = None, normalize: bool = False) -> Tensor:
        """input_ids, attention_mask: (N, T) -> pooled sentence embeddings (N, E), unit length if ``normalize``.
        Gradients flow as usual (wrap in ``torch.no_grad()`` for inference)."""
        pooled, _ = self._embed(input_ids, attention_mask, token_type_ids, False)
        return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled

    def forward(
        self,
        input_ids: Optional[Tensor] = None,
        attention_mask: Optional[Tensor] = None,
        token_type_ids: Optional[Tensor] = None,
        input_ids_b: Optional[Tensor] = None,
        attention_mask_b: Optional[Tensor] = None,
        token_type_ids_b: Optional[Tensor] = None,
        labels: Optional[Tensor] = None,
        output_gate_stats: bool = False,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> Union[DLFASentenceSimilarityOutput, tuple]:
        """input_ids, attention_mask: (B, T) the first sentences; ``*_b``: (B, T_b) the second ones, padded on
        their own. labels: (B,) similarities in [0, 1]. Returns :class:`DLFASentenceSimilarityOutput`."""
        if input_ids is None or input_ids_b is None:
            raise ValueError("DLFAForSentenceSimilarity needs input_ids and input_ids_b (the two sentences of each pair)")
        if input_ids.shape[0] != input_ids_b.shape[0]:
            raise ValueError(f"input_ids and input_ids_b hold different numbers of sentences: "
                             f"{input_ids.shape[0]} and {input_ids_b.shape[0]}")
        if labels is not None:
            labels = check_similarity_labels(labels, input_ids.shape[0])
        a, out_a = self._embed(input_ids, attention_mask, token_type_ids, output_gate_stats)
        b, out_b = self._embed(input_ids_b, attention_mask_b, token_type_ids_b, output_gate_stats)
        cos = torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)
        loss = None if labels is None else similarity_loss(self.config.similarity_loss, cos, labels)
        gates = {}
        for suffix, out in (("", out_a), ("_b", out_b)):
            gates.update({f"{name}{suffix}": getattr(out, name) for name in GATE_STAT_FIELDS})
        output = DLFASentenceSimilarityOutput(loss=loss, logits=cos, embeddings=a, embeddings_b=b, **gates)
        return _as_requested(output, return_dict, self.config)

    def save_pretrained(self, save_directory: Union[str, os.PathLike], is_main_process: bool = True, **kwargs):
        """``PreTrainedModel.save_pretrained``, plus the files ``SentenceTransformer(save_directory)`` reads
        (save the tokenizer into the same folder)."""
        super().save_pretrained(save_directory, is_main_process=is_main_process, **kwargs)
        if is_main_process:
            write_sentence_transformers_files(self.config, save_directory)
