"""Task metrics: undefined correlations are NaN with a warning; entity F1 over sentences split into windows."""
import math

import numpy as np
import pytest
from scipy import stats

from dlfa_models.data import TASKS
from dlfa_models.training.metrics import entity_f1, metric_fn, sts_metrics

NER = TASKS["ner"]


@pytest.mark.parametrize("predictions,labels,reason", [
    (np.full(6, 2.5), np.arange(6.0), "the predictions are constant"),
    (np.full((6, 1), 0.0), np.arange(6.0), "the predictions are constant"),
    (np.arange(6.0), np.full(6, 3.0), "the gold scores are constant"),
    (np.array([1.0]), np.array([2.0]), "fewer than two pairs"),
    (np.array([1.0, np.nan, 3.0]), np.arange(3.0), "some predictions are not finite"),
])
def test_undefined_correlation_is_nan_with_a_warning(predictions, labels, reason):
    with pytest.warns(RuntimeWarning, match=rf"Spearman and Pearson are undefined \({reason}\); reported as NaN"):
        scores = sts_metrics(predictions, labels)
    assert math.isnan(scores["spearman"]) and math.isnan(scores["pearson"])


def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 5, 50)
    p = y + rng.normal(0, 1, 50)
    scores = metric_fn(TASKS["sts"])(p[:, None], y, sentence_ids=None)
    assert scores["spearman"] == pytest.approx(stats.spearmanr(p, y).statistic)
    assert scores["pearson"] == pytest.approx(stats.pearsonr(p, y).statistic)


def _one_hot(ids, classes):
    return np.eye(classes)[np.asarray(ids)]


def test_entity_f1_joins_the_windows_of_a_sentence():
    # sentence 0: B-PER I-PER | I-PER over two windows (gold one PER entity of 3 tokens), predicted B-PER I-PER B-PER
    # sentence 1: B-LOC in one window, predicted right
    labels = np.array([[-100, 1, 2, -100], [-100, 2, -100, -100], [-100, 5, -100, -100]])
    pred = np.array([[0, 1, 2, 0], [0, 1, 0, 0], [0, 5, 0, 0]])
    logits = _one_hot(pred, len(NER.labels))
    joined = entity_f1(logits, labels, NER.labels, sentence_ids=[0, 0, 1])
    assert joined == {"f1": pytest.approx(0.4), "precision": 1 / 3, "recall": 0.5}  # tp 1, 3 predicted, 2 gold
    by_window = entity_f1(logits, labels, NER.labels)
    assert by_window["recall"] == 1.0  # window by window, the fragments would each count as a hit


def test_sentence_ids_must_match_rows_and_be_consecutive():
    labels = np.zeros((3, 2), dtype=int)
    logits = _one_hot(labels, len(NER.labels))
    with pytest.raises(ValueError, match="2 sentence ids for 3 rows"):
        entity_f1(logits, labels, NER.labels, sentence_ids=[0, 1])
    with pytest.raises(ValueError, match="must be consecutive"):
        entity_f1(logits, labels, NER.labels, sentence_ids=[0, 1, 0])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_metric_function_takes_sentence_ids(task):
    compute = metric_fn(TASKS[task])
    if TASKS[task].kind == "pair":
        classes = len(TASKS[task].labels) or 1
        logits = np.linspace(0, 1, 4 * classes).reshape(4, classes)
        labels = np.array([0, 1, 0, 1]) if classes > 1 else np.array([0.5, 1.0, 2.0, 4.0])
    else:
        labels = np.array([[-100, 1, 2], [-100, 0, -100]])
        logits = _one_hot(np.maximum(labels, 0), len(TASKS[task].labels))
    assert compute(logits, labels) == compute(logits, labels, sentence_ids=np.arange(len(labels)))
