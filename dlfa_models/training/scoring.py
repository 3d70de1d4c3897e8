"""Scoring a trained model: the source dev set, every language (in order of length) with its gate
statistics and prediction file, and the run's ``results.json`` and model card."""
from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..data import Task
from ..gate_stats import summarize_gate_stats
from ..reports.model_card import model_card
from ..reports.report import transfer_figures
from .arguments import Arguments
from .inputs import longest_side, model_inputs
from .json_files import write_json
from .logs import logger
from .metrics import metric_fn
from .runs import RESULTS


def scorer(task: Task, encoded):
    """(dataset for the Trainer, predictions/labels -> metrics). Sliding windows of a sentence share a
    ``sentence_id``: the column leaves the dataset and goes to the metric."""
    compute = metric_fn(task)
    if "sentence_id" not in encoded.column_names:
        return encoded, compute
    ids = np.asarray(encoded["sentence_id"])
    return encoded.remove_columns("sentence_id"), lambda p, y: compute(p, y, sentence_ids=ids)


POOLED_GATE_FIELDS = ("gate_token_sum", "gate_token_sq_sum", "gate_token_count", "gate_hist")


def language_gate_stats(fields: dict) -> Optional[dict]:
    """One language's gate statistics (gate_mean, gate_std across tokens, gate_tokens, gate_sequences,
    gate_hist) from the per-sequence fields prediction collected; None for a model without a gate.
    A bi-encoder's fields come per side (``gate_*`` of the first sentences, ``gate_*_b`` of the second):
    both sides' tokens are pooled, so gate_sequences counts sentences (two per pair)."""
    if not all(k in fields for k in POOLED_GATE_FIELDS):
        return None
    sides = [""] + (["_b"] if all(f"{k}_b" in fields for k in POOLED_GATE_FIELDS) else [])
    return summarize_gate_stats(**{k: np.concatenate([np.asarray(fields[k + side]) for side in sides])
                                   for k in POOLED_GATE_FIELDS})


def _prediction_lines(task: Task, model_config, predictions, labels, sentence_ids=None) -> list[str]:
    """One line per example: the score (STS), the label name, or the tags of the labelled tokens.
    sentence_ids (N,): the example of each row when tagging windows cut long sentences; a sentence's
    windows (consecutive rows, every word labelled in exactly one) are joined back into its line."""
    if task.kind == "pair" and not task.labels:
        return [f"{v:.6f}" for v in np.asarray(predictions).reshape(len(predictions), -1)[:, 0]]
    names = model_config.id2label
    if task.kind == "pair":
        return [names[int(i)] for i in np.asarray(predictions).argmax(-1)]
    ids = np.asarray(predictions).argmax(-1)
    rows = [[names[int(i)] for i, y in zip(row, gold) if y != -100] for row, gold in zip(ids, labels)]
    if sentence_ids is None:
        return [" ".join(tags) for tags in rows]
    return [" ".join(tag for _, window in group for tag in window)
            for _, group in itertools.groupby(zip(sentence_ids, rows), key=lambda pair: pair[0])]


def predict_by_length(trainer, ds):
    """``trainer.predict`` over ``ds`` in order of length (for a bi-encoder: of its longer sentence), so each
    batch pads little (STS scoring in less than half the time of dataset order); predictions, gate fields and
    labels come back in ``ds``'s order. Relies on the trainer predicting in the order it is given."""
    order = np.argsort([-n for n in longest_side(ds)], kind="stable")  # longest first: peak memory early
    pred = trainer.predict(ds.select(order))
    back = np.argsort(order)
    logits, gate_fields = pred.predictions
    labels = None if pred.label_ids is None else pred.label_ids[back]
    return logits[back], {k: v[back] for k, v in gate_fields.items()}, labels


def score_languages(args: Arguments, task: Task, trainer, tokenizer, data: dict, folder: Path) -> tuple[dict, dict]:
    """Metrics and gate statistics per language; per-language prediction files in ``folder``."""
    all_metrics, gates = {}, {}
    trainer.collect_gates, dev_metrics, trainer.compute_metrics = True, trainer.compute_metrics, None
    try:
        langs = list(data["eval"])
        if trainer.is_world_process_zero():  # a folder scored again: an earlier scoring's other languages go
            for old in folder.glob("predict_results_*.txt"):
                if old.name[len("predict_results_"):-len(".txt")] not in langs:
                    old.unlink()
        for i, lang in enumerate(langs, start=1):
            logger.info("scoring %s (%d/%d)", lang, i, len(langs))
            encoded = model_inputs(data["eval"][lang], tokenizer, task, args.protocol.max_length, trainer.model,
                                   f"the {args.protocol.eval_split} {lang} data")
            ds, compute = scorer(task, encoded)
            logits, gate_fields, labels = predict_by_length(trainer, ds)
            all_metrics[lang] = compute(logits, labels)
            gates[lang] = language_gate_stats(gate_fields)
            if trainer.is_world_process_zero():
                windows = encoded["sentence_id"] if "sentence_id" in encoded.column_names else None
                lines = _prediction_lines(task, trainer.model.config, logits, labels, windows)
                (folder / f"predict_results_{lang}.txt").write_text(
                    "index\tprediction\n" + "".join(f"{k}\t{line}\n" for k, line in enumerate(lines)), encoding="utf-8")
    finally:
        trainer.collect_gates, trainer.compute_metrics = False, dev_metrics
    return all_metrics, gates


def finish_run(args: Arguments, task: Task, trainer, tokenizer, data: dict, folder: Path, meta: dict) -> dict:
    """Source-dev evaluation, per-language scores and predictions, results.json (and the model card)."""
    t = args.training
    dev_metrics = {}
    if t.do_eval and trainer.eval_dataset is not None:
        dev_metrics = trainer.evaluate()
        trainer.save_metrics("eval", dev_metrics)
    all_metrics, gates, start = {}, {}, time.time()
    if t.do_predict:
        all_metrics, gates = score_languages(args, task, trainer, tokenizer, data, folder)
        trainer.save_metrics("predict", {f"predict_{lang}_{k}": v for lang, m in all_metrics.items()
                                         for k, v in m.items()})
    scores = {lang: m[task.metric] for lang, m in all_metrics.items()}
    zero_shot = [v for lang, v in scores.items() if lang not in data["sources"]]
    zero_shot_mean = float(np.mean(zero_shot)) if zero_shot else math.nan
    result = {
        "task": task.name, "kind": task.kind, "metric": task.metric, **meta,
        "scores": scores, "mean_non_source": zero_shot_mean,
        **transfer_figures(scores, data["sources"], zero_shot_mean),
        "gates": gates, "all_metrics": all_metrics, "dev_metrics": dev_metrics, "source_langs": data["sources"],
        "eval_split": args.protocol.eval_split, "eval_time_s": round(time.time() - start, 2),
    }
    if trainer.is_world_process_zero():
        write_json(folder / RESULTS, result)
        if t.do_train:
            # from the run's record: a run resumed after training (killed while scoring) trains no step here
            best_on_dev = bool(trainer.args.load_best_model_at_end and meta.get("best_step") is not None)
            model_card(result, best_on_dev).save(folder / "README.md")
    return result
