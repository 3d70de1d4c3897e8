"""Parsing and checking the options of ``dlfa-train``: the parser, ``--config`` files, a saved run's
defaults, and the checks of values and of this machine that run before any data is loaded."""
import json
import math
import os
import sys
from argparse import ArgumentDefaultsHelpFormatter
from dataclasses import fields
from pathlib import Path
from typing import Optional

from transformers import HfArgumentParser

from .arguments import (
    BIENCODER, UNTRAINED, Arguments, DLFATrainingArguments, ModelArguments, ProtocolArguments, UsageError,
)


class _HelpFormatter(ArgumentDefaultsHelpFormatter):
    """argparse's help with defaults, except where the help text itself says what the default does."""

    def _get_help_string(self, action):
        if "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> HfArgumentParser:
    """The parser: dlfa's own options first (model and fusion, data and protocol), then the Trainer's."""
    parser = HfArgumentParser(
        (ModelArguments, ProtocolArguments, DLFATrainingArguments), prog="dlfa-train", formatter_class=_HelpFormatter,
        description="Fine-tune an encoder + AIF on source languages and score other languages zero-shot "
                    "(Hugging Face Trainer; torchrun and accelerate launch work unchanged).",
    )
    parser.add_argument("--config", metavar="FILE", help=(
        "JSON or YAML file of option values (keys as the --snake_case names); options on the command line win."))
    return parser


def _read_config(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--config: no such file {file}")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError: the parser's own message names the line
        raise UsageError(f"--config {file}: not valid {'YAML' if file.suffix in ('.yaml', '.yml') else 'JSON'} "
                         f"({' '.join(str(e).split())})") from None
    if not isinstance(values, dict):
        raise UsageError(f"--config {file}: expected a mapping of option names to values")
    return values


def _config_defaults(parser: HfArgumentParser, values: dict, file: str) -> dict:
    """Config-file values as the command line would give them: YAML/JSON numbers and lists of the options
    that take text (``fusion_layer: 5``, ``eval_langs: [en, de]``) become text, and every value is
    converted and checked against the option's choices, which argparse skips for defaults."""
    actions = {a.dest: a for a in parser._actions}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise UsageError(f"--config {file}: unknown option(s) {unknown}")
    defaults = {}
    for key, value in values.items():
        action = actions[key]
        if isinstance(value, (list, tuple)) and action.nargs not in ("+", "*"):
            value = ",".join(map(str, value))
        elif isinstance(value, (list, tuple)):
            value = [str(v) for v in value]
        elif value is not None and not isinstance(value, str):
            value = str(value)
        try:
            items = value if isinstance(value, list) else [] if value is None else [value]
            converted = [action.type(v) if action.type else v for v in items]
        except (TypeError, ValueError) as e:
            raise UsageError(f"--config {file}: {key}: {value!r} ({e})") from None
        if action.choices is not None and any(v not in action.choices for v in converted):
            choices = ", ".join(str(getattr(c, "value", c)) for c in action.choices)
            raise UsageError(f"--config {file}: {key}: {values[key]!r} is not one of {choices}")
        defaults[key] = value
    return defaults


def saved_run_record(model_path: str) -> dict:
    """What the dlfa-train run folder ``model_path`` recorded (run_config.json); {} when it has no record
    or is an evaluate-only folder, which holds no model of its own."""
    from .runs import RUN_CONFIG

    file = Path(model_path) / RUN_CONFIG
    if not file.is_file():
        return {}
    try:
        recorded = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise UsageError(f"--model_name_or_path {model_path}: {file} is not valid JSON ({e})") from None
    if not isinstance(recorded, dict):
        raise UsageError(f"--model_name_or_path {model_path}: {file} does not hold a JSON object")
    return {} if recorded.get("mode") == "predict" else recorded


def _saved_run_defaults(model_path: str) -> dict:
    """The data options a dlfa-train run folder recorded, as defaults for scoring it again: the same task,
    data, split, languages, example subsets and length, so evaluate-only reproduces the run's
    results.json unless an option says otherwise."""
    recorded = saved_run_record(model_path)
    values = {k: recorded[k] for k in SAVED_RUN_OPTIONS if k in recorded}
    for key in ("source_langs", "eval_langs"):  # recorded as lists, given as comma lists
        if isinstance(values.get(key), list):
            values[key] = ",".join(values[key])
    return values


# recorded by a training run, inherited by evaluate-only on its folder
SAVED_RUN_OPTIONS = ("task", "architecture", "data", "source_langs", "eval_langs", "eval_split", "max_length",
                     "max_eval_samples", "subset_seed")


def parse_args(argv: Optional[list[str]] = None) -> Arguments:
    """Parse the command line (``sys.argv[1:]`` by default) into the three dataclasses and check the values.

    Defaults, lowest first: the options' own, a saved run's data options when scoring its folder without
    --do_train, --config, the command line."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # the file's values become the parser's defaults, so the command line still overrides them;
    # HfArgumentParser.parse_yaml_file / parse_json_file read a file alone, with no command line on top
    pre, _ = parser.parse_known_args(argv)  # only to find --config
    config = _config_defaults(parser, _read_config(pre.config), pre.config) if pre.config else {}
    parser.set_defaults(**config)
    pre, _ = parser.parse_known_args(argv)  # the mode and model, with the config file's values
    if not pre.do_train and (pre.do_eval or pre.do_predict):
        parser.set_defaults(**{**_saved_run_defaults(pre.model_name_or_path), **config})
    model, protocol, training, _extra = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    args = Arguments(model, protocol, training)
    check_options(args)
    return args


# ----------------------------------------------------------------------------- option checks

def comma_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _langs(option: str, text: Optional[str]) -> None:
    if text is None:
        return
    langs = comma_list(text)
    if not langs:
        raise UsageError(f"--{option} {text!r}: name at least one language")
    repeated = sorted({lang for lang in langs if langs.count(lang) > 1})
    if repeated:
        raise UsageError(f"--{option} {text!r} names {', '.join(repeated)} twice")


def _number(option: str, value, low: float, high: float = math.inf, low_open: bool = False,
            high_open: bool = True) -> None:
    """``value`` in [low, high) (or the open or closed ends asked for); None passes."""
    if value is None:
        return
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise UsageError(f"--{option} {value}: must be in {lo}{low:g}, {high:g}{hi}")


def check_options(args: Arguments) -> None:
    """Option values that would train nothing, train wrongly or fail only after data loading: ``UsageError``.
    Checks that need the encoder (layers, positions, hidden size) are ``planning.check_limits``'."""
    m, p, t = args
    for obj in args:  # no NaN or infinity in any number
        for f in fields(obj):
            value = getattr(obj, f.name, None)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"--{f.name} {value}: must be a finite number")
    _check_architecture(args)
    _number("reduction", m.reduction, 1)
    _number("aif_lr", m.aif_lr, 0)
    _number("subset_seed", p.subset_seed, 0, 2**32)
    _langs("source_langs", p.source_langs)
    _langs("eval_langs", p.eval_langs)
    _number("learning_rate", t.learning_rate, 0, low_open=True)
    _number("num_train_epochs", t.num_train_epochs, 0, low_open=t.max_steps <= 0)
    _number("per_device_train_batch_size", t.per_device_train_batch_size, 1)
    _number("per_device_eval_batch_size", t.per_device_eval_batch_size, 1)
    _number("gradient_accumulation_steps", t.gradient_accumulation_steps, 1)
    _number("weight_decay", t.weight_decay, 0)
    _number("warmup_steps", t.warmup_steps, 0)
    _number("max_grad_norm", t.max_grad_norm, 0)
    _number("adam_beta1", t.adam_beta1, 0, 1)
    _number("adam_beta2", t.adam_beta2, 0, 1)
    _number("adam_epsilon", t.adam_epsilon, 0)
    _number("label_smoothing_factor", t.label_smoothing_factor, 0, 1)
    _number("seed", t.seed, 0, 2**32)
    _number("data_seed", t.data_seed, 0, 2**32)
    _number("dataloader_num_workers", t.dataloader_num_workers, 0)
    _number("eval_accumulation_steps", t.eval_accumulation_steps, 1)
    _number("save_total_limit", t.save_total_limit, 0)
    for name in ("eval_steps", "save_steps", "logging_steps"):  # below 1: a fraction of the training steps
        _number(name, getattr(t, name), 0, low_open=True)
    _number("neftune_noise_alpha", t.neftune_noise_alpha, 0)
    _number("eval_delay", t.eval_delay, 0)
    if not t.eval_do_concat_batches:
        raise UsageError("--eval_do_concat_batches false: dlfa-train scores whole prediction arrays; leave it on")


def _check_architecture(args: Arguments) -> None:
    """The bi-encoder's options only with the bi-encoder, and the bi-encoder only for STS; then the
    defaults that depend on the architecture (pooling, similarity loss)."""
    m, p = args.model, args.protocol
    biencoder = m.architecture == BIENCODER
    if biencoder and p.task != "sts":
        raise UsageError(f"--architecture biencoder scores sentence similarity: only with --task sts, not {p.task}")
    if m.similarity_loss is not None and not biencoder:
        raise UsageError(f"--similarity_loss {m.similarity_loss} is a bi-encoder loss: only with --architecture "
                         "biencoder")
    if not biencoder and UNTRAINED in [s.lower() for s in comma_list(m.fusion_layer)]:
        raise UsageError("--fusion_layer untrained is the plain bi-encoder scored without training: only with "
                         "--architecture biencoder")
    if biencoder and m.similarity_loss is None:
        m.similarity_loss = "cosine"
    if m.pooling is None:
        m.pooling = "mean" if biencoder else "cls"


def check_environment(args: Arguments) -> None:
    """What the options need of this machine, before any data is loaded: the trackers and optimizer
    packages asked for, and a writable --output_dir."""
    t = args.training
    _check_report_to(t.report_to)
    if t.do_train:
        _check_optimizer(t)
    _check_output_dir(t.output_dir)


def _check_report_to(report_to: list[str]) -> None:
    from transformers.integrations import get_available_reporting_integrations

    missing = [name for name in report_to or [] if name not in get_available_reporting_integrations()]
    if missing:
        raise UsageError(f"--report_to {','.join(report_to)}: {', '.join(missing)} is not installed "
                         f"(pip install {' '.join(missing)}) or not a known tracker")


def _check_optimizer(training) -> None:
    """A missing optimizer package, found now rather than when training starts."""
    from transformers import Trainer

    name = getattr(training.optim, "value", training.optim)
    if training.optim_args and any("=" not in item for item in training.optim_args.split(",")):
        raise UsageError(f"--optim_args {training.optim_args!r}: expected key=value pairs separated by commas")
    try:
        Trainer.get_optimizer_cls_and_kwargs(training)
    except ImportError as e:
        raise UsageError(f"--optim {name}: {' '.join(str(e).split())}") from None
    except ValueError as e:  # only the packages it lacks: others need the model, checked when it exists
        if "install" in str(e).lower() or "import" in str(e).lower():
            raise UsageError(f"--optim {name}: {' '.join(str(e).split())}") from None


def _check_output_dir(output_dir: str) -> None:
    """--output_dir must be, or be creatable as, a writable folder."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir {path}: is a file, not a folder")
    existing = next(p for p in [path, *path.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--output_dir {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--output_dir {path}: {existing} is not writable")
