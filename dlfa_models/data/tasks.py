"""The tasks: their kind, headline metric, labels, hub dataset and file prefix; ``DataError`` for bad data.

Every loader returns a ``datasets.Dataset`` in one of two normal forms:
pair tasks (sts, xnli, pawsx) have ``sentence1``, ``sentence2``, ``label``
(float score for sts, class id otherwise); tagging tasks (ner, pos) have
``tokens`` and ``tags`` (class ids).
"""
from __future__ import annotations

from dataclasses import dataclass


class DataError(ValueError):
    """Bad or missing task data; the message names the file and row."""


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "pair" or "tagging"
    metric: str  # the headline metric, used to pick the best checkpoint
    labels: tuple[str, ...] = ()  # class names; empty for regression
    hub_name: str = ""
    file_prefix: str = ""


NER_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
UPOS_LABELS = ("NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ", "PROPN",
               "PRON", "X", "_", "ADV", "INTJ", "VERB", "AUX")
TASKS = {
    "sts": Task("sts", "pair", "spearman", (), "PhilipMay/stsb_multi_mt", "stsb"),
    "xnli": Task("xnli", "pair", "accuracy", ("entailment", "neutral", "contradiction"), "facebook/xnli", "xnli"),
    "pawsx": Task("pawsx", "pair", "accuracy", ("different", "paraphrase"), "google-research-datasets/paws-x", "pawsx"),
    "ner": Task("ner", "tagging", "f1", NER_LABELS, "unimelb-nlp/wikiann", "ner"),
    "pos": Task("pos", "tagging", "accuracy", UPOS_LABELS, "universal-dependencies/universal_dependencies", "pos"),
}
