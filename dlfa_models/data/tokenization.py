"""Tokenization of task data for the models: sentence pairs (as one sequence, or apart for a bi-encoder),
and word-tagged sentences cut into windows."""
from __future__ import annotations

from collections import Counter

from .tasks import DataError, Task

IGNORE = -100  # label of positions that are not scored (special tokens, later sub-words, words of another window)


def tokenize(ds, tokenizer, task: Task, max_length: int):
    """Pair tasks: one sequence of both sentences, truncated to max_length.

    Tagging tasks: a sentence longer than max_length sub-words (with the special tokens) is cut into windows of
    whole words, consecutive windows sharing up to a quarter of a window, so no word is lost. Every word is
    labelled on its first sub-word in exactly one window (the one where it sits further from the window's edge;
    the overlap is split at its middle), ``IGNORE`` elsewhere, so the labelled words of a sentence's windows,
    read in order, are the sentence's words in order. Column ``sentence_id`` holds the source row of each
    window; the rows of one sentence are consecutive; pass it to ``training.metrics.metric_fn`` as ``sentence_ids`` (the
    ``Trainer`` leaves it out of the model's inputs, as it does every column the model's ``forward`` does not
    name). A word the tokenizer turns into no sub-word at all is replaced by its unknown token, so that it still
    carries its label.
    """
    if task.kind == "pair":
        def pair_fn(batch):
            enc = tokenizer(batch["sentence1"], batch["sentence2"], truncation=True, max_length=max_length)
            enc["labels"] = batch["label"]
            return enc
        return ds.map(pair_fn, batched=True, remove_columns=ds.column_names)

    body = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if body < 1:
        raise ValueError(f"max_length {max_length} leaves no room for words next to the tokenizer's special tokens")
    overlap = body // 4

    def tagging_fn(batch, indices):
        words = [list(tokens) for tokens in batch["tokens"]]
        counts = _subword_counts(tokenizer, words)
        pieces, owned, sentence_ids = [], [], []
        for row, (index, sentence, n) in enumerate(zip(indices, words, counts)):
            for start, end, own_start, own_end in word_windows(n, body, overlap):
                pieces.append(sentence[start:end])
                owned.append((row, start, own_start, own_end))
                sentence_ids.append(index)
        enc = tokenizer(pieces, is_split_into_words=True, truncation=True, max_length=max_length)
        enc["labels"] = [
            _window_labels(enc.word_ids(i), batch["tags"][row], start, own_start, own_end)
            for i, (row, start, own_start, own_end) in enumerate(owned)
        ]
        enc["sentence_id"] = sentence_ids
        return enc

    return ds.map(tagging_fn, batched=True, with_indices=True, remove_columns=ds.column_names)


def _subword_counts(tokenizer, words: list[list[str]]) -> list[list[int]]:
    """Sub-words per word of each sentence; words with none are replaced in place by the unknown token."""
    enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    counts = []
    for i, sentence in enumerate(words):
        per_word = Counter(w for w in enc.word_ids(i) if w is not None)
        for j in range(len(sentence)):
            if per_word[j] == 0:
                sentence[j], per_word[j] = tokenizer.unk_token, 1
        counts.append([per_word[j] for j in range(len(sentence))])
    return counts


def word_windows(counts: list[int], body: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Word windows of a sentence whose word w has counts[w] sub-words.

    Returns (start, end, own_start, own_end) per window: words [start, end) go into the window (at most
    ``body`` sub-words, unless one word alone is longer), words [own_start, own_end) are labelled in it.
    Consecutive windows share up to ``overlap`` sub-words of whole words; the owned ranges tile the sentence.
    Windows that would own no word are left out.
    """
    n, spans, start = len(counts), [], 0
    while True:
        end, size = start, 0
        while end < n and (end == start or size + counts[end] <= body):
            size += counts[end]
            end += 1
        spans.append((start, end))
        if end == n:
            break
        start, shared = end, 0  # step back over whole words while they fit the overlap and the next word fits too
        while (start - 1 > spans[-1][0] and shared + counts[start - 1] <= overlap
               and shared + counts[start - 1] + counts[end] <= body):
            start -= 1
            shared += counts[start]
    # a word in two windows belongs to the one where it is further from the edge: split each overlap at its middle
    cuts = [0] + [(nxt[0] + prev[1] + 1) // 2 for prev, nxt in zip(spans, spans[1:])] + [n]
    return [(s, e, a, b) for (s, e), a, b in zip(spans, cuts, cuts[1:]) if a < b]


def _window_labels(word_ids: list, tags: list[int], start: int, own_start: int, own_end: int) -> list[int]:
    labels, previous = [], None
    for w in word_ids:
        first = w is not None and w != previous
        labels.append(tags[start + w] if first and own_start <= start + w < own_end else IGNORE)
        previous = w
    return labels


def check_score_range(ds, score_range: tuple, name: str = "the data") -> None:
    """Every ``label`` of ``ds`` a number in ``score_range``; else ``DataError`` naming ``name`` and the row."""
    low, high = score_range
    for row, score in enumerate(ds["label"]):
        if isinstance(score, bool) or not (isinstance(score, (int, float)) and low <= score <= high):  # NaN too
            raise DataError(f"{name}, row {row}: score {score!r} is outside {low}–{high}")


def tokenize_apart(ds, tokenizer, max_length: int, prompt: str = "", score_range: tuple = (0.0, 5.0),
                   name: str = "the data"):
    """Sentence pairs for a bi-encoder: each sentence alone, ``prompt`` before it, truncated to max_length.

    Columns ``input_ids``, ``attention_mask`` (and ``token_type_ids`` if the tokenizer gives them) of
    sentence1, the same with ``_b`` of sentence2, and ``labels``: the gold score scaled from ``score_range``
    to [0, 1] (the cosine the bi-encoder learns). A score outside the range raises ``DataError`` naming ``name``
    (e.g. "sts en train") and the row.
    """
    check_score_range(ds, score_range, name)
    low, high = score_range

    def apart_fn(batch):
        first = tokenizer([prompt + s for s in batch["sentence1"]], truncation=True, max_length=max_length)
        second = tokenizer([prompt + s for s in batch["sentence2"]], truncation=True, max_length=max_length)
        enc = {**first, **{f"{k}_b": v for k, v in second.items()}}
        enc["labels"] = [(score - low) / (high - low) for score in batch["label"]]
        return enc
    return ds.map(apart_fn, batched=True, remove_columns=ds.column_names)
