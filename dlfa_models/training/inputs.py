"""A split's model inputs for the model being trained or scored: one sequence per pair or tagged sentence
(cross-encoder, tagger), or each sentence apart with the encoder's prompt (bi-encoder)."""
from __future__ import annotations

from ..data import SCORE_RANGE, Task
from ..data.tokenization import tokenize, tokenize_apart


def is_biencoder(model) -> bool:
    from ..modeling_biencoder import DLFAForSentenceSimilarity

    return isinstance(model, DLFAForSentenceSimilarity)


def model_inputs(ds, tokenizer, task: Task, max_length: int, model, name: str = "the data"):
    """``ds`` tokenized for ``model``: for a bi-encoder, sentence1 and sentence2 apart (``_b`` columns), each
    after ``model.config.sentence_prompt``, labels scaled from the STS score range to [0, 1]."""
    if not is_biencoder(model):
        return tokenize(ds, tokenizer, task, max_length)
    return tokenize_apart(ds, tokenizer, max_length, model.config.sentence_prompt or "", SCORE_RANGE, name)


def longest_side(ds) -> list[int]:
    """Tokens per example, of the longer sentence for a bi-encoder's inputs (what a batch pads to)."""
    if "input_ids_b" not in ds.column_names:
        return [len(ids) for ids in ds["input_ids"]]
    return [max(len(a), len(b)) for a, b in zip(ds["input_ids"], ds["input_ids_b"])]
