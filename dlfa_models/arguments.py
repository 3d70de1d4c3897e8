"""Command-line arguments of ``dlfa-train``: model, protocol and ``TrainingArguments`` dataclasses.

Parsed by ``transformers.HfArgumentParser``, so every option has a ``--snake_case``
and a ``--dash-case`` spelling, help text and a default, and a ``--config`` JSON or
YAML file supplies values that the command line can still override.
"""
import json
import logging
import math
import os
import sys
from argparse import ArgumentDefaultsHelpFormatter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import NamedTuple, Optional, Union

from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from .configuration_dlfa import DEFAULT_ENCODER
from .data import TASKS
from .encoders import OFFLINE_ENCODER

logger = logging.getLogger(__name__)

TASK_METRIC = "task"  # --metric_for_best_model default: the task's headline metric
SUBSET_SEED = 42


class UsageError(ValueError):
    """A bad option value, found before any data is loaded or any model trained (exit status 2)."""


@dataclass
class ModelArguments:
    _argument_group_name = "dlfa: model and fusion"

    model_name_or_path: str = field(
        default=DEFAULT_ENCODER,
        metadata={"aliases": ["--encoder"], "help": (
            f"Encoder to fine-tune: hub name or local folder ('{OFFLINE_ENCODER}' = the MiniLM of that PyPI "
            "package). With --do_predict and no --do_train: a saved DLFA model folder to score.")},
    )
    fusion_layer: str = field(
        default="middle",
        metadata={"help": (
            "Hidden-state index fused with the last layer (0 = embeddings, up to num_hidden_layers - 1), "
            "'none' (the last-layer baseline), 'middle', 'all' (baseline and every lower layer) or a comma "
            "list such as none,4,8: one run per setting.")},
    )
    gate_init: str = field(
        default="random",
        metadata={"help": (
            "AIF initialisation: 'random' (the layers' default init) or a mix p in (0, 1): the fused output "
            "starts as p * last + (1 - p) * lower for every token. A comma list (random,0.9) multiplies the "
            "fusion settings.")},
    )
    reduction: int = field(default=4, metadata={"help": "AIF bottleneck ratio r (hidden size / r units)."})
    pooling: str = field(default="cls", metadata={
        "choices": ["cls", "mean"], "help": "Sentence representation for pair tasks: first token or mean."})
    backend: str = field(default="auto", metadata={
        "choices": ["auto", "triton", "torch"], "help": "AIF backend (auto: triton on a GPU, else torch)."})
    aif_lr: Optional[float] = field(default=None, metadata={
        "help": "Learning rate of the AIF parameters (default: --learning_rate; 0 keeps the AIF at its start); "
                "weight decay as the Trainer's."})


@dataclass
class ProtocolArguments:
    _argument_group_name = "dlfa: data and protocol"

    task: str = field(default="sts", metadata={"choices": sorted(TASKS), "help": "Task to train and score."})
    data: str = field(default="hub", metadata={"help": (
        "'hub' (datasets from the Hugging Face hub), 'sample' (the STS sample shipped in the package) or a "
        "folder of <prefix>-<lang>-<split>.csv/.tsv/.jsonl files (prefix stsb, xnli, pawsx, ner, pos).")})
    source_langs: str = field(default="en", metadata={"help": "Comma list of training (source) languages."})
    eval_langs: Optional[str] = field(default=None, metadata={
        "help": "Comma list of languages scored with --do_predict (default: the task's usual languages)."})
    eval_split: str = field(default="test", metadata={
        "help": "Split scored per language (the stsb_multi_mt copy without a test split: 'dev')."})
    max_length: int = field(default=128, metadata={"help": "Tokens per sequence (at most the encoder's positions)."})
    max_train_samples: Optional[int] = field(default=None, metadata={
        "help": "Train on a random subset (drawn with --subset_seed) of this many source examples."})
    max_eval_samples: Optional[int] = field(default=None, metadata={
        "help": "Score at most this many examples per language and of the source dev set (a random subset "
                "drawn with --subset_seed)."})
    subset_seed: int = field(default=SUBSET_SEED, metadata={
        "help": "Seed of the subsets --max_train_samples and --max_eval_samples draw: the data's, so every "
                "--seed and --seeds run, and evaluate-only, see the same examples."})
    seeds: Optional[str] = field(default=None, metadata={"help": (
        "Comma list of seeds (0,1,2,3,4): every setting runs once per seed in <setting>/seed-<s>, and "
        "summary.json compares the settings over the seeds. Without it: one run with --seed.")})
    resume: bool = field(default=False, metadata={"help": (
        "Continue each run from its last complete checkpoint; runs that already wrote results.json are "
        "skipped. Refused when the folder's run_config.json differs from these settings (every option and "
        "Trainer flag that can change a model or a score; see docs/run-folders.md).")})
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "Keep the checkpoint-* folders (with optimizer state) after a run; default: keep only the best model."})
    verbose: bool = field(default=False, metadata={
        "help": "Show dataset mapping bars, per-evaluation progress bars and model load reports."})
    # learning curves and what a run folder keeps
    curve_steps: Optional[int] = field(default=None, metadata={"help": (
        "Score source dev before training, every N steps and at the last step, into curves.json per run "
        "(and curves.png beside the summary or sweep).")})
    curve_zero_shot: bool = field(default=False, metadata={
        "help": "With --curve_steps, also score the dev split of every --eval_langs language that is not a source."})
    keep: str = field(default="model", metadata={"choices": ["model", "weights", "none"], "help": (
        "What a finished run folder keeps besides its results, predictions and logs: 'model' (the saved model "
        "and tokenizer, loadable with from_pretrained), 'weights' (config.json and fusion.safetensors: only the AIF "
        "and head weights) or 'none'.")})


@dataclass
class DLFATrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the zero-shot protocol's defaults: evaluate and save every epoch,
    keep the best model on source dev, no experiment trackers unless asked."""

    _argument_group_name = "Trainer (transformers TrainingArguments)"

    output_dir: Optional[str] = field(default="runs/dlfa", metadata={
        "help": "Folder of the runs: one sub-folder per setting (and seed), plus the sweep and summary files."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start over in run folders that hold another run's files (they are deleted); not with --resume, "
                "and never for a folder holding runs in its sub-folders."})
    do_train: bool = field(default=False, metadata={"help": (
        "Train on the source languages (default: when none of --do_train, --do_eval, --do_predict is given, "
        "all three run; otherwise only those given).")})
    do_eval: bool = field(default=False, metadata={"help": (
        "Score the source-language dev set (default: as --do_train). Without --do_train: of the saved model "
        "--model_name_or_path.")})
    do_predict: bool = field(default=False, metadata={"help": (
        "Score every --eval_langs language (default: as --do_train). Without --do_train: the saved model "
        "--model_name_or_path, with the data options its run recorded unless given.")})
    num_train_epochs: float = field(default=3.0, metadata={
        "aliases": ["--epochs"], "help": "Training epochs over the source data."})
    per_device_train_batch_size: int = field(default=32, metadata={
        "aliases": ["--batch-size"], "help": "Training batch size per device."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Evaluation batch size per device."})
    learning_rate: float = field(default=2e-5, metadata={"aliases": ["--lr"], "help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.01, metadata={
        "help": "AdamW weight decay (not applied to biases and LayerNorm weights)."})
    warmup_steps: float = field(default=0.1, metadata={
        "help": "Linear warmup: steps, or a fraction in [0, 1) of the training steps."})
    eval_strategy: Union[IntervalStrategy, str] = field(default="epoch", metadata={
        "help": "When to evaluate on source dev: 'epoch', 'steps' or 'no'. Giving --eval_steps switches "
                "evaluation and saving to steps."})
    save_strategy: Union[SaveStrategy, str] = field(default="epoch", metadata={
        "help": "When to save a checkpoint: as --eval_strategy unless set."})
    save_total_limit: Optional[int] = field(default=1, metadata={
        "help": "Checkpoints kept during a run besides the best one."})
    load_best_model_at_end: bool = field(default=True, metadata={
        "help": "End each run with the checkpoint best on source dev (what gets saved and scored)."})
    metric_for_best_model: Optional[str] = field(default=TASK_METRIC, metadata={
        "help": f"Dev metric that picks the best checkpoint; '{TASK_METRIC}' = the task's headline metric."})
    logging_steps: float = field(default=50, metadata={"help": "Log the training loss every N steps."})
    disable_tqdm: Optional[bool] = field(default=False, metadata={
        "help": "Hide the training progress bar (shown whatever the library log level)."})
    report_to: Union[None, str, list[str]] = field(default="none", metadata={
        "help": "Experiment trackers to report to ('none', 'all', 'wandb', 'tensorboard', ...)."})

    def __post_init__(self):
        if not (self.do_train or self.do_eval or self.do_predict):
            self.do_train = self.do_eval = self.do_predict = True  # the zero-shot protocol
        if self.eval_steps is not None and self.eval_strategy == "epoch":
            self.eval_strategy = "steps"
            if self.save_strategy == "epoch":
                self.save_strategy, self.save_steps = "steps", self.eval_steps
        if (self.save_strategy == "epoch" and self.eval_strategy == "no") or self.save_strategy == "no":
            self.load_best_model_at_end = False  # nothing to choose from
        if self.ddp_find_unused_parameters is None:
            self.ddp_find_unused_parameters = False  # the models use every parameter (no pooler); True only warns
        import torch

        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # nothing to pin for
        device = _accelerator()
        if self.bf16 and device is None:
            self.use_cpu = True  # bf16 autocast on the CPU; the Trainer asks for use_cpu to allow it
        if not self.use_cpu and cpu_processes(int(os.environ.get("WORLD_SIZE", "1")), device):
            # without use_cpu, accelerate finds no process group here and each process would train
            # alone on all the data (no DDP, no barriers), racing the others on disk
            if device == "mps":
                logger.warning("torchrun with Apple MPS: MPS has no multi-process backend, "
                               "so every process trains on the CPU (gloo)")
            self.use_cpu = True
            if self.ddp_backend is None:
                self.ddp_backend = "gloo"
        super().__post_init__()


def cpu_processes(world_size: int, device: Optional[str]) -> bool:
    """Whether torchrun's ``world_size`` processes must train on the CPU: several of them and no
    accelerator with a process-group backend (``device`` None, or Apple's 'mps')."""
    return world_size > 1 and device in (None, "mps")


def _accelerator() -> Optional[str]:
    """The type of the current accelerator ('cuda', 'xpu', 'mps', ...), None on a CPU-only machine."""
    import torch

    if hasattr(torch, "accelerator"):  # torch >= 2.6
        return torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else None
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else None


class Arguments(NamedTuple):
    model: ModelArguments
    protocol: ProtocolArguments
    training: DLFATrainingArguments


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


def _saved_run_defaults(model_path: str) -> dict:
    """The data options a dlfa-train run folder recorded (run_config.json), as defaults for scoring it
    again: the same task, data, split, languages, example subsets and length, so evaluate-only
    reproduces the run's results.json unless an option says otherwise."""
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
    if recorded.get("mode") == "predict":  # an evaluate-only folder holds no model of its own
        return {}
    values = {k: recorded[k] for k in SAVED_RUN_OPTIONS if k in recorded}
    for key in ("source_langs", "eval_langs"):  # recorded as lists, given as comma lists
        if isinstance(values.get(key), list):
            values[key] = ",".join(values[key])
    return values


# recorded by a training run, inherited by evaluate-only on its folder
SAVED_RUN_OPTIONS = ("task", "data", "source_langs", "eval_langs", "eval_split", "max_length", "max_eval_samples",
                     "subset_seed")


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
    Checks that need the encoder (layers, positions, hidden size) are ``train.check_limits``'."""
    m, p, t = args
    for obj in args:  # no NaN or infinity in any number
        for f in fields(obj):
            value = getattr(obj, f.name, None)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"--{f.name} {value}: must be a finite number")
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
