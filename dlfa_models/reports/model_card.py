"""The model card (README.md) of a dlfa-train run folder, built with ``huggingface_hub.ModelCard``.

Its metadata is machine-readable: ``base_model`` (the encoder's hub id), the task's dataset,
the training hyperparameters and a model-index with one result per scored language;
the text says what the run actually did and how to load the model.
"""
from __future__ import annotations

import math
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data import TASKS
from ..encoders import hub_id

# run_config.json keys that describe training (shown as the card's hyperparameters)
HYPERPARAMETERS = ("learning_rate", "aif_lr", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                   "gradient_accumulation_steps", "weight_decay", "warmup_steps", "lr_scheduler_type", "optim",
                   "max_grad_norm", "seed", "data_seed", "max_train_samples", "max_length", "reduction", "pooling",
                   "gate_init", "eval_strategy", "metric_for_best_model", "fp16", "bf16")

UNTRAINED_SETTINGS = ("max_length", "pooling")


def _dataset(task, data: str) -> str:
    """The dataset's hub id when read from the hub, else the local source's name."""
    if data == "hub":
        return task.hub_name
    return "dlfa STS sample" if data == "sample" else Path(data).name


def _pipeline_tag(kind: str, biencoder: bool = False) -> str:
    if biencoder:
        return "sentence-similarity"
    return "token-classification" if kind == "tagging" else "text-classification"


def _biencoder_usage() -> list[str]:
    return ["```python", "import dlfa_models  # registers the DLFA model type (needed to load this model)",
            "from sentence_transformers import SentenceTransformer", "",
            'model = SentenceTransformer("path/to/this/folder")  # its prompt, pooling and normalisation included',
            'a, b = model.encode(["A man plays.", "Ein Mann spielt."])  # the sentence prompt, if any, is the default',
            "score = model.similarity(a, b)  # cosine, what dlfa-train scored", "```", "",
            "`AutoModel.from_pretrained` gives its per-sentence encoder + AIF (a `DLFAModel`); "
            "`DLFAForSentenceSimilarity.from_pretrained` the whole bi-encoder, whose `logits` is the cosine."]


def _usage(result: dict, auto: str) -> list[str]:
    lines = ["```python",
             "import dlfa_models  # registers the DLFA classes with the Auto classes (needed to load this model)",
             f"from transformers import {auto}", "", f'model = {auto}.from_pretrained("path/to/this/folder")', "```"]
    if result["task"] == "sts":
        lines += ["", "The model's output is the similarity score (`problem_type` regression):", "",
                  "```python", "import dlfa_models", "from sentence_transformers import CrossEncoder", "",
                  'scores = CrossEncoder("path/to/this/folder").predict([("A man plays.", "Ein Mann spielt.")])',
                  "```", "", '`pipeline("text-classification", model="path/to/this/folder")` returns the same score.']
    return lines


def model_card(result: dict, best_on_dev: bool) -> ModelCard:
    """The card of one run. ``result``: the run's results.json dict (``settings`` = its run_config.json);
    ``best_on_dev``: whether the saved weights are the checkpoint best on source dev (else the last step)."""
    task = TASKS[result["task"]]
    settings = result.get("settings") or {}
    biencoder = result.get("architecture") == "biencoder"
    untrained = biencoder and result["setting"] == "untrained"
    encoder = result["encoder"]
    base = hub_id(encoder)
    dataset = _dataset(task, settings.get("data", "hub"))
    metric, split = result["metric"], result["eval_split"]
    sources = ", ".join(result["source_langs"])
    scores = {lang: v for lang, v in result["scores"].items() if math.isfinite(v)}
    card_data = ModelCardData(
        library_name="sentence-transformers" if biencoder else "transformers", base_model=base,
        datasets=[dataset] if settings.get("data") == "hub" else None,
        language=list(result["scores"]) or list(result["source_langs"]),
        pipeline_tag=_pipeline_tag(task.kind, biencoder),
        tags=["dlfa", task.name, "zero-shot-cross-lingual"] + (["sentence-transformers"] if biencoder else []),
        model_name=f"{Path(encoder).name}-dlfa-{task.name}-{result['setting']}",
        eval_results=[EvalResult(task_type=_pipeline_tag(task.kind, biencoder), dataset_type=dataset,
                                 dataset_name=f"{dataset} {lang}", dataset_config=lang, dataset_split=split,
                                 metric_type=metric, metric_value=score)
                      for lang, score in scores.items()] or None,
        # an untrained run took no step: only what shapes its scores
        hyperparameters={k: settings[k] for k in (UNTRAINED_SETTINGS if untrained else HYPERPARAMETERS)
                         if settings.get(k) is not None},
    )
    fusion = ("no fusion (the last-layer baseline)" if result["fusion_layer"] is None
              else f"AIF fusion of the last layer with hidden state {result['fusion_layer']}")
    saved = ("the checkpoint best on source-language dev" if best_on_dev
             else "the model at the end of training (no checkpoint was chosen on dev)")
    auto = f"AutoModelFor{'Token' if task.kind == 'tagging' else 'Sequence'}Classification"
    named = f"{encoder}{f' (`{base}`)' if base and base != encoder else ''}"
    if untrained:
        what = (f"{named} as a plain bi-encoder (each sentence alone, pooled, compared by cosine), scored with no "
                "training steps: what the encoder gives for free.")
    else:
        what = (f"{named} {'as a bi-encoder (each sentence alone, pooled, cosine) ' if biencoder else ''}"
                f"fine-tuned on {dataset} in {sources} with {fusion}, seed {result['seed']}; "
                f"this folder holds {saved}.")
    usage = _biencoder_usage() if biencoder else _usage(result, auto)
    body = [f"# {encoder} + DLFA, {task.name} ({result['setting']})", "", what, ""] + usage + [""]
    if scores:
        body += [f"## Scores: {split} {metric} per language", "",
                 "Languages other than the source ones are zero-shot.", "",
                 f"| language | {metric} | mean gate |", "|---|---:|---:|"]
        gates = result.get("gates") or {}
        for lang, score in result["scores"].items():
            gate = gates.get(lang)
            body.append(f"| {lang} | {score:.4f} | {'-' if not gate else format(gate['gate_mean'], '.3f')} |")
        if math.isfinite(result.get("mean_non_source", math.nan)):
            body.append(f"| mean (zero-shot) | {result['mean_non_source']:.4f} | |")
        if math.isfinite(result.get("transfer_gap", math.nan)):
            body += ["", f"Transfer gap (source − zero-shot mean): {result['transfer_gap']:.4f}; "
                         f"ratio zero-shot mean / source: {result['transfer_ratio']:.4f}."]
    else:
        body += ["This run trained without scoring any language (no `--do_predict`); score it with "
                 "`dlfa-train --do_predict --model_name_or_path <this folder>`."]
    body += ["", "## Training hyperparameters", "", "| setting | value |", "|---|---|"]
    body += [f"| {k} | {v} |" for k, v in card_data.hyperparameters.items()]
    body += ["", "All settings: `run_config.json`; all metrics: `results.json`, `all_results.json`.", ""]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body))
