"""mBERT (any BERT-like encoder) + AIF as Hugging Face models, training and zero-shot evaluation.

Importing this package registers the ``dlfa`` model type with the Auto classes.
"""
from transformers import (
    AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification,
)

from .apply import apply_dlfa, load_dlfa_pretrained
from .configuration_dlfa import DEFAULT_ENCODER, DLFAConfig
from .encoders import resolve_encoder as encoder_path
from .encoders import sentence_prompt
from .gate_init import init_gate
from .gate_stats import GATE_HIST_BINS, GATE_STAT_FIELDS, gate_statistics, summarize_gate_stats
from .modeling_biencoder import DLFAForSentenceSimilarity, DLFASentenceSimilarityOutput
from .modeling_dlfa import (
    DLFAForSequenceClassification, DLFAForTokenClassification, DLFAModel, DLFAModelOutput,
    DLFAPreTrainedModel, DLFASequenceClassifierOutput, DLFATokenClassifierOutput,
)
from .data.pair_collator import SentencePairCollator

AutoConfig.register("dlfa", DLFAConfig, exist_ok=True)
AutoModel.register(DLFAConfig, DLFAModel, exist_ok=True)
AutoModelForSequenceClassification.register(DLFAConfig, DLFAForSequenceClassification, exist_ok=True)
AutoModelForTokenClassification.register(DLFAConfig, DLFAForTokenClassification, exist_ok=True)

__all__ = [
    "DEFAULT_ENCODER", "DLFAConfig", "DLFAModel", "DLFAPreTrainedModel", "DLFAForSequenceClassification",
    "DLFAForTokenClassification", "DLFAModelOutput", "DLFASequenceClassifierOutput", "DLFATokenClassifierOutput",
    "apply_dlfa", "load_dlfa_pretrained", "encoder_path", "init_gate", "gate_statistics", "summarize_gate_stats",
    "GATE_HIST_BINS", "GATE_STAT_FIELDS",
    "DLFAForSentenceSimilarity", "DLFASentenceSimilarityOutput", "SentencePairCollator", "sentence_prompt",
]
