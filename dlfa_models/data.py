"""Task data: from the hub through ``datasets``, from local files, or the shipped STS sample.

Every loader returns a ``datasets.Dataset`` in one of two normal forms:
pair tasks (sts, xnli, pawsx) have ``sentence1``, ``sentence2``, ``label``
(float score for sts, class id otherwise); tagging tasks (ner, pos) have
``tokens`` and ``tags`` (class ids). Bad local data raises ``DataError`` naming
the file and row before any training starts.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from datasets import Dataset

from .sts_sample import SAMPLE_PATH


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
# Universal Dependencies treebank per language (override with "lang=treebank", e.g. "de=de_hdt")
UD_TREEBANKS = {"en": "en_ewt", "de": "de_gsd", "es": "es_ancora", "fr": "fr_gsd", "zh": "zh_gsd", "ru": "ru_syntagrus",
                "ar": "ar_padt", "hi": "hi_hdtb", "ja": "ja_gsd", "it": "it_isdt", "nl": "nl_alpino", "pt": "pt_bosque"}
SPLIT_ALIASES = {"dev": "validation", "validation": "validation", "train": "train", "test": "test"}
SCORE_RANGE = (0.0, 5.0)
PAIR_COLUMN_ALIASES = {"premise": "sentence1", "hypothesis": "sentence2", "similarity_score": "label", "score": "label"}


def load_split(task: Task, lang: str, split: str, source: str) -> Dataset:
    """One language's split. source: "hub", "sample" (the shipped STS sample) or a folder of files."""
    split = SPLIT_ALIASES.get(split, split)
    if source == "hub":
        return _from_hub(task, lang, split)
    if source == "sample":
        if task.name != "sts":
            raise DataError(f"the shipped sample holds STS data only, not {task.name}")
        return _from_sample(lang, split)
    return _from_folder(task, lang, split, Path(source))


# ----------------------------------------------------------------------------- hub

def _from_hub(task: Task, lang: str, split: str) -> Dataset:
    from datasets import load_dataset

    if task.name == "sts":
        ds = load_dataset(task.hub_name, lang, split="dev" if split == "validation" else split)
        return ds.rename_column("similarity_score", "label").select_columns(["sentence1", "sentence2", "label"])
    if task.name == "xnli":
        ds = load_dataset(task.hub_name, lang, split=split)
        return ds.rename_columns({"premise": "sentence1", "hypothesis": "sentence2"})
    if task.name == "pawsx":
        return load_dataset(task.hub_name, lang, split=split).select_columns(["sentence1", "sentence2", "label"])
    if task.name == "ner":
        return load_dataset(task.hub_name, lang, split=split).rename_column("ner_tags", "tags").select_columns(
            ["tokens", "tags"])
    lang, _, treebank = lang.partition("=")
    treebank = treebank or UD_TREEBANKS.get(lang)
    if treebank is None:
        raise DataError(f"no Universal Dependencies treebank known for {lang!r}; pass it as '{lang}=<treebank>'")
    ds = load_dataset(task.hub_name, treebank, split=split)
    return ds.rename_column("upos", "tags").select_columns(["tokens", "tags"])


# ----------------------------------------------------------------------------- shipped sample

def _from_sample(lang: str, split: str) -> Dataset:
    want = "dev" if split == "validation" else split
    rows = []
    with open(SAMPLE_PATH, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["split"] == want and row["lang"] == lang:
                rows.append({"sentence1": row["sentence1"], "sentence2": row["sentence2"],
                             "label": float(row["similarity_score"])})
    if not rows:
        raise DataError(f"{SAMPLE_PATH}: no {want} rows for language {lang!r}")
    return Dataset.from_list(rows)


# ----------------------------------------------------------------------------- local files

def find_file(task: Task, lang: str, split: str, folder: Path) -> Path:
    """``<prefix>-<lang>-<split>.<csv|tsv|jsonl>``, split "dev" or "validation" for validation."""
    names = ("dev", "validation") if split == "validation" else (split,)
    for name in names:
        for ext in ("csv", "tsv", "jsonl"):
            path = folder / f"{task.file_prefix}-{lang}-{name}.{ext}"
            if path.exists():
                return path
    raise DataError(
        f"no {split} data for language {lang!r} in {folder} "
        f"(looked for {task.file_prefix}-{lang}-{names[0]}.csv/.tsv/.jsonl)"
    )


def _read_rows(path: Path, task: Task) -> list[tuple[int, dict]]:
    """(row number, record) pairs; STS CSVs in the stsb_multi_mt format have no header."""
    with open(path, newline="", encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            rows = []
            for i, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append((i, json.loads(line)))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}, row {i}: not valid JSON ({e.msg})") from None
        else:
            delimiter = "\t" if path.suffix == ".tsv" else ","
            raw = list(csv.reader(f, delimiter=delimiter))
            if not raw:
                raise DataError(f"{path}: the file is empty")
            if task.name == "sts" and raw[0][-1:] and _is_number(raw[0][-1]):
                header, start = ["sentence1", "sentence2", "label"], 0
            else:
                header, start = raw[0], 1
            rows = []
            for i, values in enumerate(raw[start:], start=start + 1):
                if len(values) != len(header):
                    raise DataError(f"{path}, row {i}: {len(values)} columns, expected {len(header)} ({', '.join(header)})")
                rows.append((i, dict(zip(header, values))))
    if not rows:
        raise DataError(f"{path}: the file is empty")
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _label_id(value, task: Task, path: Path, row: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(task.labels):
        return value
    if isinstance(value, str) and value in task.labels:
        return task.labels.index(value)
    raise DataError(f"{path}, row {row}: unknown label {value!r}; expected one of {list(task.labels)} or 0..{len(task.labels) - 1}")


def _from_folder(task: Task, lang: str, split: str, folder: Path) -> Dataset:
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    path = find_file(task, lang, split, folder)
    records = []
    for row, rec in _read_rows(path, task):
        if task.kind == "pair":
            rec = {PAIR_COLUMN_ALIASES.get(k, k): v for k, v in rec.items()}
            missing = [c for c in ("sentence1", "sentence2", "label") if c not in rec]
            if missing:
                raise DataError(f"{path}, row {row}: missing column(s) {missing}")
            if task.name == "sts":
                try:
                    score = float(rec["label"])
                except (TypeError, ValueError):
                    raise DataError(f"{path}, row {row}: score {rec['label']!r} is not a number") from None
                if not (math.isfinite(score) and SCORE_RANGE[0] <= score <= SCORE_RANGE[1]):
                    raise DataError(f"{path}, row {row}: score {score} is outside {SCORE_RANGE[0]}–{SCORE_RANGE[1]}")
                label = score
            else:
                label = _label_id(rec["label"], task, path, row)
            records.append({"sentence1": str(rec["sentence1"]), "sentence2": str(rec["sentence2"]), "label": label})
        else:
            if "tokens" not in rec or "tags" not in rec:
                raise DataError(f"{path}, row {row}: missing column(s) {[c for c in ('tokens', 'tags') if c not in rec]}")
            tokens, tags = rec["tokens"], rec["tags"]
            if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
                raise DataError(f"{path}, row {row}: tokens and tags must be lists of equal length")
            records.append({"tokens": [str(t) for t in tokens], "tags": [_label_id(t, task, path, row) for t in tags]})
    return Dataset.from_list(records)


def limit(ds: Dataset, n: Optional[int], seed: int) -> Dataset:
    """At most n rows, a seeded random subset."""
    if n is None or len(ds) <= n:
        return ds
    return ds.shuffle(seed=seed).select(range(n))
