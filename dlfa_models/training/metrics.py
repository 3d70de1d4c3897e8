"""Task metrics: Spearman/Pearson for STS, accuracy for pair classification and POS, entity F1 for NER."""
from __future__ import annotations

import math
import warnings
from typing import Iterator, Optional

import numpy as np
from scipy import stats


def sts_metrics(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """predictions: (N,) or (N, 1) scores; labels: (N,). Correlations in [-1, 1].

    With fewer than two pairs, non-finite predictions, or constant predictions or gold scores, a correlation is
    undefined: both are NaN, with a ``RuntimeWarning`` saying why (never 0.0, which would read as "no signal"
    and slip unnoticed into averages).
    """
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    reason = ("fewer than two pairs" if len(p) < 2 else "some predictions are not finite" if not np.isfinite(p).all()
              else "the predictions are constant" if np.ptp(p) == 0
              else "the gold scores are constant" if np.ptp(y) == 0 else None)
    if reason:
        warnings.warn(f"Spearman and Pearson are undefined ({reason}); reported as NaN", RuntimeWarning, stacklevel=2)
        return {"spearman": math.nan, "pearson": math.nan}
    return {"spearman": float(stats.spearmanr(p, y).statistic), "pearson": float(stats.pearsonr(p, y).statistic)}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict:
    """logits: (N, C) or (N, T, C); labels with -100 ignored."""
    pred = np.asarray(logits).argmax(-1)
    y = np.asarray(labels)
    keep = y != -100
    return {"accuracy": float((pred[keep] == y[keep]).mean()) if keep.any() else 0.0}


def bio_entities(tags: list[str]) -> set[tuple[int, int, str]]:
    """(start, end, type) spans of IOB2 tags; an I- without a matching B- starts an entity (conlleval)."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, label = tag.partition("-")
        continues = prefix == "I" and kind == label
        if start is not None and not continues:
            spans.add((start, i, kind))
            start, kind = None, None
        if prefix == "B" or (prefix == "I" and not continues):
            start, kind = i, label
    return spans


def entity_f1(logits: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
              sentence_ids: Optional[np.ndarray] = None) -> dict:
    """Entity-level precision, recall, F1 over sentences; logits (N, T, C), labels (N, T), -100 ignored.

    sentence_ids (N,): the sentence of each row when long sentences were cut into windows (rows of one
    sentence consecutive, its labelled tokens in order); entities are then read over whole sentences.
    """
    tp = n_pred = n_gold = 0
    for gold_ids, pred_ids in _sentences(np.asarray(logits).argmax(-1), np.asarray(labels), sentence_ids):
        gold = bio_entities([names[i] for i in gold_ids])
        guess = bio_entities([names[i] for i in pred_ids])
        tp += len(gold & guess)
        n_pred += len(guess)
        n_gold += len(gold)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def _sentences(pred: np.ndarray, labels: np.ndarray, sentence_ids) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(gold, predicted) class ids of the labelled tokens of each sentence, its window rows joined."""
    keep = labels != -100
    rows = [(labels[i][keep[i]], pred[i][keep[i]]) for i in range(len(labels))]
    if sentence_ids is None:
        yield from rows
        return
    ids = np.asarray(sentence_ids).reshape(-1)
    if len(ids) != len(rows):
        raise ValueError(f"{len(ids)} sentence ids for {len(rows)} rows of predictions")
    starts = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
    if len(set(ids[starts].tolist())) < len(starts):
        raise ValueError("the rows of a sentence must be consecutive (as tokenize() writes them)")
    for a, b in zip(starts, starts[1:] + [len(ids)]):
        yield np.concatenate([r[0] for r in rows[a:b]]), np.concatenate([r[1] for r in rows[a:b]])


def metric_names(task) -> tuple[str, ...]:
    """The keys of ``metric_fn(task)``'s result, the first being the task's headline metric."""
    if task.name == "sts":
        return "spearman", "pearson"
    if task.name == "ner":
        return "f1", "precision", "recall"
    return ("accuracy",)


def metric_fn(task):
    """The scoring function of a task: (predictions, label_ids, sentence_ids=None) -> dict of metrics.

    sentence_ids is the ``sentence_id`` column of ``tokenize()``'s tagging output, in prediction order; entity
    F1 needs it to see sentences cut into windows whole. Token accuracy does not: every gold token is labelled
    in exactly one window.
    """
    if task.name == "sts":
        return lambda predictions, label_ids, sentence_ids=None: sts_metrics(predictions, label_ids)
    if task.name == "ner":
        return lambda predictions, label_ids, sentence_ids=None: entity_f1(predictions, label_ids, task.labels,
                                                                            sentence_ids)
    return lambda predictions, label_ids, sentence_ids=None: accuracy(predictions, label_ids)
