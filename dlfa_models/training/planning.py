"""Planning a ``dlfa-train`` command: the fusion settings and seeds it runs, the checks that need the
encoder, and what defines each run (its folder, its ``TrainingArguments``, its recorded settings)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..data import Task
from ..reports.report import setting_name
from .arguments import BIENCODER, CROSS_ENCODER, TASK_METRIC, UNTRAINED, Arguments, UsageError
from .json_files import strict
from .metrics import metric_names
from .parsing import comma_list as _split
from .runs import training_settings

DEFAULT_EVAL_LANGS = {
    "sts": "en,de,es,fr,it,nl,pl,pt,ru,zh,ja",
    "xnli": "en,ar,bg,de,el,es,fr,hi,ru,sw,th,tr,ur,vi,zh",
    "pawsx": "en,de,es,fr,ja,ko,zh",
    "ner": "en,de,es,fr,nl,ru,zh,ar,hi,ja",
    "pos": "en,de,es,fr,nl,ru,zh,ar,hi,ja",
}

SAMPLE_LANGS = "en,de,es,fr"


@dataclass(frozen=True)
class Setting:
    """One fusion setting: the fused hidden state (None = baseline) and the gate's starting mix (None = random);
    ``untrained``: the plain bi-encoder scored with no training steps (fusion_layer None)."""

    fusion_layer: Optional[int]
    gate_init: Optional[float] = None
    untrained: bool = False

    @property
    def name(self) -> str:
        return UNTRAINED if self.untrained else setting_name(self.fusion_layer, self.gate_init)


def fusion_settings(spec: str, num_layers: int) -> list:
    """'none' -> [None]; 'all' -> [None, 0, .., L-1]; 'middle' -> [L // 2]; '3' or 'none,2,4' -> list;
    'untrained' -> the string UNTRAINED.
    Raises ``UsageError`` for anything else, a layer outside 0..L-1 or a repeated setting."""
    if spec.strip().lower() == "all":
        return [None] + list(range(num_layers))
    items = [item.strip().lower() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise UsageError(f"--fusion-layer {spec!r}: empty setting; give layer indices, 'none', 'middle' or 'all'")
    settings = []
    for item in items:
        if item == UNTRAINED:
            layer = UNTRAINED  # checked against the architecture by parsing.check_options
        elif item in ("none", "baseline"):
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
    layers = fusion_settings(fusion_spec, num_layers)
    # what you get for free comes first, in every table
    settings = [Setting(None, None, True)] if UNTRAINED in layers else []
    settings += [Setting(layer, init) for layer in layers if layer != UNTRAINED
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


def eval_languages(protocol, task: Task) -> list[str]:
    """The languages scored: --eval_langs, else the task's usual ones (the sample's four for --data sample)."""
    p = protocol
    return _split(p.eval_langs or (SAMPLE_LANGS if p.data == "sample" else DEFAULT_EVAL_LANGS[task.name]))


def run_folder(out: Path, task: Task, setting: str, seed: int, per_seed: bool,
               architecture: str = CROSS_ENCODER) -> Path:
    """<out>/<task>-<setting>[/seed-<s>]; a bi-encoder's runs in <task>-biencoder-<setting> (the cross-encoder's
    names are those of runs made before the bi-encoder existed, so they still resume and summarise)."""
    prefix = f"{task.name}-biencoder" if architecture == BIENCODER else task.name
    folder = out / f"{prefix}-{setting}"
    return folder / f"seed-{seed}" if per_seed else folder


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
    # the bi-encoder's keys only for the bi-encoder: a cross-encoder's record stays as before, so old runs resume
    biencoder = {"architecture": BIENCODER, "similarity_loss": m.similarity_loss} if m.architecture == BIENCODER else {}
    return strict({  # as run_config.json holds them, so that they compare with a record
        **biencoder,
        "task": task.name, "encoder": encoder, "setting": setting.name, "fusion_layer": setting.fusion_layer,
        "gate_init": setting.gate_init, "seed": seed, "reduction": m.reduction, "pooling": m.pooling,
        "aif_lr": m.aif_lr, "backend": m.backend, "data": p.data, "source_langs": _split(p.source_langs),
        "max_length": p.max_length, "max_train_samples": p.max_train_samples, "max_eval_samples": p.max_eval_samples,
        "subset_seed": p.subset_seed, "eval_langs": eval_languages(p, task), "eval_split": p.eval_split,
        **training_settings(run_training_args(t, Path(t.output_dir), seed, task)),
    })
