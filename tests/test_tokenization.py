"""Tokenization of tagged sentences into windows: no word lost, every word labelled once, scores as if unwindowed."""
import random
import string

import numpy as np
import pytest
from datasets import Dataset
from transformers import BertTokenizerFast

from dlfa_models.data import TASKS
from dlfa_models.data.tokenization import IGNORE, tokenize, word_windows
from dlfa_models.training.metrics import metric_fn

NER = TASKS["ner"]


@pytest.fixture(scope="module")
def tokenizer():
    """Letter-level WordPiece: a word of k letters is k sub-words, so window cuts are easy to steer."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(string.ascii_lowercase) + [
        f"##{c}" for c in string.ascii_lowercase]
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})


def _sentences(rng, n, max_words=30, max_letters=12):
    """Random sentences of random-length words (some empty or untokenizable) with random NER tags."""
    rows = []
    for _ in range(n):
        k = rng.randint(1, max_words)
        lengths = rng.choices([1, 1, 2, 3, max_letters], k=k)
        words = ["".join(rng.choices(string.ascii_lowercase, k=n)) for n in lengths]
        for _ in range(rng.randint(0, 2)):
            words[rng.randrange(k)] = rng.choice(["", " ", "\u200b", "\x00"])  # words with no sub-word of their own
        rows.append({"tokens": words, "tags": [rng.randrange(len(NER.labels)) for _ in range(k)]})
    return rows


def _labelled(ds):
    """Per sentence, the labels of its windows in order, ignored positions dropped."""
    out = {}
    for row in ds:
        out.setdefault(row["sentence_id"], []).extend(x for x in row["labels"] if x != IGNORE)
    return out


@pytest.mark.parametrize("max_length", [3, 5, 8, 13, 40])
def test_every_word_is_labelled_exactly_once_in_order(tokenizer, max_length):
    rows = _sentences(random.Random(max_length), 60)
    ds = tokenize(Dataset.from_list(rows), tokenizer, NER, max_length)
    assert set(ds.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels", "sentence_id"}
    assert all(len(ids) <= max_length for ids in ds["input_ids"])
    ids = ds["sentence_id"]
    assert ids == sorted(ids) and set(ids) == set(range(len(rows)))  # every sentence, its windows consecutive
    assert _labelled(ds) == {i: row["tags"] for i, row in enumerate(rows)}
    if max_length <= 8:
        assert len(ds) > len(rows)  # long sentences were really cut


def test_a_sentence_that_fits_is_one_window_as_before(tokenizer):
    rows = [{"tokens": ["abc", "de", "f"], "tags": [1, 2, 0]}]
    ds = tokenize(Dataset.from_list(rows), tokenizer, NER, 16)
    plain = tokenizer(rows[0]["tokens"], is_split_into_words=True)
    assert len(ds) == 1 and ds[0]["input_ids"] == plain["input_ids"]
    assert ds[0]["labels"] == [IGNORE, 1, IGNORE, IGNORE, 2, IGNORE, 0, IGNORE] and ds[0]["sentence_id"] == 0


def test_windows_overlap_and_own_the_middle():
    # ten one-sub-word words, windows of 4 sub-words sharing 1: [0,4) [3,7) [6,10)
    assert word_windows([1] * 10, 4, 1) == [(0, 4, 0, 4), (3, 7, 4, 7), (6, 10, 7, 10)]
    # a word longer than a window stands alone (truncated, but its first sub-word is kept)
    assert word_windows([1, 9, 1], 4, 1) == [(0, 1, 0, 1), (1, 2, 1, 2), (2, 3, 2, 3)]
    # a wider overlap: the shared words [4, 6) are split at their middle
    assert word_windows([1] * 8, 6, 2) == [(0, 6, 0, 5), (4, 8, 5, 8)]


@pytest.mark.parametrize("max_length", [4, 7, 12])
def test_scores_of_windowed_sentences_equal_scores_of_whole_sentences(tokenizer, max_length):
    """The same per-word predictions, scored from windows and from untruncated sentences, give the same numbers."""
    rng = random.Random(100 + max_length)
    rows = _sentences(rng, 40)
    guesses = [[t if rng.random() < 0.7 else rng.randrange(len(NER.labels)) for t in row["tags"]] for row in rows]
    ds = Dataset.from_list(rows)
    compute = metric_fn(NER)
    windowed = tokenize(ds, tokenizer, NER, max_length)
    whole = tokenize(ds, tokenizer, NER, 10_000)
    assert len(whole) == len(rows) and len(windowed) > len(rows)
    scores = [compute(*_predictions(t, guesses), sentence_ids=t["sentence_id"]) for t in (windowed, whole)]
    assert scores[0] == scores[1]
    assert scores[0]["f1"] > 0
    acc = [metric_fn(TASKS["pos"])(*_predictions(t, guesses))["accuracy"] for t in (windowed, whole)]
    words = sum(len(r["tags"]) for r in rows)
    assert acc[0] == acc[1] == sum(g == t for row, gs in zip(rows, guesses) for g, t in zip(gs, row["tags"])) / words


def _predictions(ds, guesses):
    """Trainer-like padded (N, T, C) logits putting each word's guess on its labelled position, and labels (N, T)."""
    width = max(len(x) for x in ds["labels"])
    logits = np.zeros((len(ds), width, len(NER.labels)))
    labels = np.full((len(ds), width), IGNORE)
    seen = {}
    for i, row in enumerate(ds):
        labels[i, : len(row["labels"])] = row["labels"]
        for j, y in enumerate(row["labels"]):
            if y != IGNORE:
                k = seen.get(row["sentence_id"], 0)
                logits[i, j, guesses[row["sentence_id"]][k]] = 1.0
                seen[row["sentence_id"]] = k + 1
    return logits, labels


def test_entity_across_a_window_boundary_is_one_entity(tokenizer):
    # "ab cd ef" with B-PER I-PER I-PER, predicted B-PER I-PER B-PER: whole-sentence scoring finds no match
    rows = [{"tokens": ["ab", "cd", "ef"], "tags": [1, 2, 2]}]
    guesses = [[1, 2, 1]]
    windowed = tokenize(Dataset.from_list(rows), tokenizer, NER, 5)  # 3 sub-words per window: one word each
    assert len(windowed) == 3
    logits, labels = _predictions(windowed, guesses)
    joined = metric_fn(NER)(logits, labels, sentence_ids=windowed["sentence_id"])
    assert joined == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert metric_fn(NER)(logits, labels)["f1"] > 0  # scored window by window the fragments would match


def test_pair_tasks_are_truncated_not_windowed(tokenizer):
    ds = Dataset.from_list([{"sentence1": "abcdefgh", "sentence2": "ijk", "label": 1.5}])
    out = tokenize(ds, tokenizer, TASKS["sts"], 8)
    assert len(out) == 1 and len(out[0]["input_ids"]) == 8 and out[0]["labels"] == 1.5
    assert "sentence_id" not in out.column_names


def test_max_length_without_room_for_words_is_refused(tokenizer):
    with pytest.raises(ValueError, match="max_length 2 leaves no room"):
        tokenize(Dataset.from_list([{"tokens": ["a"], "tags": [0]}]), tokenizer, NER, 2)
