"""Task metrics: Spearman/Pearson for STS, accuracy for pair classification and POS, entity F1 for NER."""
from __future__ import annotations

import numpy as np
from scipy import stats


def sts_metrics(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """predictions: (N,) or (N, 1) scores; labels: (N,). Correlations in [-1, 1]."""
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if len(p) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return {"spearman": 0.0, "pearson": 0.0}  # undefined correlation: no signal
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


def entity_f1(logits: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict:
    """Entity-level precision, recall, F1 over sentences; logits (N, T, C), labels (N, T), -100 ignored."""
    pred = np.asarray(logits).argmax(-1)
    tp = n_pred = n_gold = 0
    for p_row, y_row in zip(pred, np.asarray(labels)):
        keep = y_row != -100
        gold = bio_entities([names[i] for i in y_row[keep]])
        guess = bio_entities([names[i] for i in p_row[keep]])
        tp += len(gold & guess)
        n_pred += len(guess)
        n_gold += len(gold)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def metric_fn(task):
    """The scoring function of a task: (predictions, label_ids) -> dict of metrics."""
    if task.name == "sts":
        return sts_metrics
    if task.name == "ner":
        return lambda logits, labels: entity_f1(logits, labels, task.labels)
    return accuracy
