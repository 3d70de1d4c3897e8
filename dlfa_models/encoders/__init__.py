"""Encoders: the offline names, their resolution to folders, and the e5 converter (format, tokenizer, folder)."""
from .names import HUB_IDS, MULTILINGUAL_ENCODER, OFFLINE_ENCODER, SENTENCE_PROMPTS, hub_id, sentence_prompt
from .resolve import resolve_encoder

__all__ = ["HUB_IDS", "MULTILINGUAL_ENCODER", "OFFLINE_ENCODER", "SENTENCE_PROMPTS", "hub_id", "resolve_encoder",
           "sentence_prompt"]
