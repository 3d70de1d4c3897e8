"""Tokenization of task data for the models: sentence pairs and word-tagged sentences."""
from __future__ import annotations

from .data import Task


def tokenize(ds, tokenizer, task: Task, max_length: int):
    """Pair tasks: one sequence of both sentences. Tagging: labels on each word's first sub-word, -100 elsewhere."""
    if task.kind == "pair":
        def fn(batch):
            enc = tokenizer(batch["sentence1"], batch["sentence2"], truncation=True, max_length=max_length)
            enc["labels"] = batch["label"]
            return enc
    else:
        def fn(batch):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            labels = []
            for i, tags in enumerate(batch["tags"]):
                previous, row = None, []
                for word in enc.word_ids(i):
                    row.append(-100 if word is None or word == previous else tags[word])
                    previous = word
                labels.append(row)
            enc["labels"] = labels
            return enc
    return ds.map(fn, batched=True, remove_columns=ds.column_names)
