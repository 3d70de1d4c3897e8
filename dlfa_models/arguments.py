"""Command-line arguments of ``dlfa-train``: model, protocol and ``TrainingArguments`` dataclasses.

Parsed by ``transformers.HfArgumentParser``, so every option has a ``--snake_case``
and a ``--dash-case`` spelling, help text and a default, and a ``--config`` JSON or
YAML file supplies values that the command line can still override.
"""
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional, Union

from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from .configuration_dlfa import DEFAULT_ENCODER
from .data import TASKS
from .encoders import OFFLINE_ENCODER

logger = logging.getLogger(__name__)

TASK_METRIC = "task"  # --metric_for_best_model default: the task's headline metric


class UsageError(ValueError):
    """A bad option value, found before any data is loaded or any model trained (exit status 2)."""


@dataclass
class ModelArguments:
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
        "help": "Learning rate of the AIF parameters (default: --learning_rate); weight decay as the Trainer's."})


@dataclass
class ProtocolArguments:
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
        "help": "Train on a seeded random subset of this many source examples."})
    max_eval_samples: Optional[int] = field(default=None, metadata={
        "help": "Score at most this many examples per language and of the source dev set."})
    seeds: Optional[str] = field(default=None, metadata={"help": (
        "Comma list of seeds (0,1,2,3,4): every setting runs once per seed in <setting>/seed-<s>, and "
        "summary.json compares the settings over the seeds. Without it: one run with --seed.")})
    resume: bool = field(default=False, metadata={"help": (
        "Continue each run from its last complete checkpoint; runs that already wrote results.json are "
        "skipped. Refused when the folder's run_config.json differs from these settings.")})
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

    output_dir: Optional[str] = field(default="runs/dlfa", metadata={
        "help": "Folder of the runs: one sub-folder per setting (and seed), plus the sweep and summary files."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start over in run folders that hold another run's files (they are deleted)."})
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
        if self.save_strategy == "epoch" and self.eval_strategy == "no":
            self.load_best_model_at_end = False
        import torch

        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # nothing to pin for
        device = _accelerator()
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


def build_parser() -> HfArgumentParser:
    parser = HfArgumentParser(
        (ModelArguments, ProtocolArguments, DLFATrainingArguments), prog="dlfa-train",
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
    if file.suffix in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(text)
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise UsageError(f"--config {file}: expected a mapping of option names to values")
    return values


def parse_args(argv: Optional[list[str]] = None) -> Arguments:
    """Parse the command line (``sys.argv[1:]`` by default) into the three dataclasses."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # the file's values become the parser's defaults, so the command line still overrides them;
    # HfArgumentParser.parse_yaml_file / parse_json_file read a file alone, with no command line on top
    pre, _ = parser.parse_known_args(argv)  # only to find --config
    if pre.config:
        values = _read_config(pre.config)
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"--config {pre.config}: unknown option(s) {unknown}")
        parser.set_defaults(**values)
    model, protocol, training, _extra = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    return Arguments(model, protocol, training)
