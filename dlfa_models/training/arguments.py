"""Command-line arguments of ``dlfa-train``: model, protocol and ``TrainingArguments`` dataclasses.

Parsed by ``transformers.HfArgumentParser`` (:mod:`.parsing`), so every option has a ``--snake_case``
and a ``--dash-case`` spelling, help text and a default, and a ``--config`` JSON or
YAML file supplies values that the command line can still override.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Union

from transformers import TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from ..configuration_dlfa import DEFAULT_ENCODER
from ..data import TASKS
from ..encoders import OFFLINE_ENCODER

logger = logging.getLogger(__name__)

TASK_METRIC = "task"  # --metric_for_best_model default: the task's headline metric
CROSS_ENCODER, BIENCODER = "cross-encoder", "biencoder"
ARCHITECTURES = (CROSS_ENCODER, BIENCODER)
UNTRAINED = "untrained"  # the --fusion_layer setting of the bi-encoder scored with no training steps
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
            "list such as none,4,8: one run per setting. With --architecture biencoder also 'untrained': the "
            "plain encoder scored with no training steps (what you get for free; always the first row).")},
    )
    gate_init: str = field(
        default="random",
        metadata={"help": (
            "AIF initialisation: 'random' (the layers' default init) or a mix p in (0, 1): the fused output "
            "starts as p * last + (1 - p) * lower for every token. A comma list (random,0.9) multiplies the "
            "fusion settings.")},
    )
    reduction: int = field(default=4, metadata={"help": "AIF bottleneck ratio r (hidden size / r units)."})
    architecture: str = field(default=CROSS_ENCODER, metadata={"choices": list(ARCHITECTURES), "help": (
        "STS model: 'cross-encoder' (both sentences in one sequence, a regression head) or 'biencoder' (each "
        "sentence encoded alone, pooled, scored by cosine; trained on the gold score scaled to [0, 1]; "
        "saved folders load with SentenceTransformer).")})
    similarity_loss: Optional[str] = field(default=None, metadata={"choices": ["cosine", "cosent"], "help": (
        "Bi-encoder loss on the cosine: 'cosine' (MSE, sentence-transformers' CosineSimilarityLoss) or "
        "'cosent' (CoSENTLoss) (default: cosine; only with --architecture biencoder).")})
    pooling: Optional[str] = field(default=None, metadata={"choices": ["cls", "mean"], "help": (
        "Sentence representation for pair tasks: first token or mean (default: cls for the cross-encoder, "
        "mean for the bi-encoder).")})
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
