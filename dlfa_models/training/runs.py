"""Run folders: the settings a run ran with, refusing another run's folder, resume checks, checkpoints.

A run folder holds ``run_config.json`` (written before training), checkpoints while
training, and at the end the best model, ``results.json`` and the ``*_results.json``
files. A folder is never shared by two runs: it is claimed for the whole command
(:mod:`.run_claim`), a folder inside another run's folder or holding other runs is
refused, and a resume must have the recorded settings.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Optional

from .arguments import BIENCODER, UsageError
from .json_files import read_json, strict, write_json
from .run_claim import LOCK_FILE, claimed

logger = logging.getLogger(__name__)

RUN_CONFIG = "run_config.json"
RESULTS = "results.json"
TRAIN_RESULTS = "train_results.json"
# recorded in run_config.json but free to change on --resume: they change neither the model nor its scores
SCORING_KEYS = frozenset({"backend", "do_eval"})
# a scoring-only folder (--do_predict without --do_train) is scored again whole: its languages may change too
RESCORED_KEYS = SCORING_KEYS | {"eval_langs", "eval_split"}
# TrainingArguments fields that cannot change a model or a score, so not recorded in run_config.json;
# every other field is (a Trainer release's new fields too) and a resume must repeat it
UNRECORDED_TRAINING_ARGS = frozenset({
    # where the run writes and how it is named
    "output_dir", "overwrite_output_dir", "run_name", "project", "trackio_space_id", "trackio_bucket_id",
    "trackio_static_space_id", "resume_from_checkpoint", "local_rank",
    # logging, progress bars and trackers
    "logging_strategy", "logging_steps", "logging_first_step", "log_on_each_node", "logging_nan_inf_filter",
    "include_num_input_tokens_seen", "logging_dir", "log_level", "log_level_replica", "disable_tqdm", "report_to",
    "skip_memory_metrics",
    # checkpoint saving (the best checkpoint is chosen by the recorded evaluation settings)
    "save_strategy", "save_steps", "save_on_each_node", "save_total_limit", "save_only_model",
    "enable_jit_checkpoint",
    # the Hugging Face hub
    "push_to_hub", "hub_token", "hub_private_repo", "hub_model_id", "hub_strategy", "hub_always_push", "hub_revision",
    # data loader plumbing and memory: same batches in the same order
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context", "eval_accumulation_steps", "torch_empty_cache_steps",
    # process-group plumbing
    "ddp_backend", "ddp_timeout",
})
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def training_settings(training) -> dict:
    """The run's ``TrainingArguments`` as recorded (JSON types): every field but ``UNRECORDED_TRAINING_ARGS``."""
    return strict({k: v for k, v in training.to_dict().items() if k not in UNRECORDED_TRAINING_ARGS})


def checkpoints(folder: Path) -> list[Path]:
    """The checkpoint-<step> folders, by step."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` itself holds a run's files."""
    return (folder / RUN_CONFIG).exists() or (folder / RESULTS).exists() or bool(checkpoints(folder))


def _in_use(folder: Path) -> bool:
    return holds_run(folder) or claimed(folder)


def enclosing_run(folder: Path) -> Optional[Path]:
    """The nearest folder above ``folder`` that holds a run's record or results or is claimed by a live run."""
    return next((p for p in folder.absolute().parents
                 if (p / RUN_CONFIG).exists() or (p / RESULTS).exists() or claimed(p)), None)


def nested_runs(folder: Path) -> list[Path]:
    """The folders below ``folder`` that hold a run or are claimed by a live one (a run's checkpoints excepted)."""
    found = []
    for root, dirs, _ in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _CHECKPOINT.match(d))  # nothing to find inside a checkpoint
        found += [Path(root) / name for name in dirs if _in_use(Path(root) / name)]
    return found


def differing_keys(recorded: dict, settings: dict, free=SCORING_KEYS) -> list[str]:
    keys = (set(recorded) | set(settings)) - free
    return sorted(k for k in keys if recorded.get(k) != settings.get(k))


def _differences(recorded: dict, settings: dict, keys: list[str]) -> str:
    absent = [k for k in keys if k not in recorded]
    changed = [f"{k}: {recorded.get(k)!r} there, {settings.get(k)!r} now" for k in keys if k in recorded]
    return "; ".join(changed + ([f"not recorded there: {', '.join(absent)}"] if absent else []))


def check_run_folder(folder: Path, settings: dict, resume: bool, overwrite: bool, free=SCORING_KEYS,
                     model: Optional[str] = None) -> str:
    """What to do with ``folder`` for a run with ``settings`` (JSON-normalised):
    "new" (empty or no run yet), "overwrite" (delete the other run's files first),
    "resume" (same settings, continue) or "done" (same settings, results written).
    Raises ``UsageError`` for a folder inside another run's folder or holding other runs (whatever
    ``overwrite`` says), holding another or an unknown run, or a resume with other settings (keys in
    ``free`` may differ), and an overwrite of the folder that holds ``model`` (a local --model_name_or_path)."""
    outer = enclosing_run(folder)
    if outer is not None:
        raise UsageError(f"{folder} lies inside {outer}, the folder of another run; choose another --output_dir")
    inner = nested_runs(folder)
    if inner:
        shown = ", ".join(str(p.relative_to(folder)) for p in inner[:3]) + (", ..." if len(inner) > 3 else "")
        raise UsageError(f"{folder} holds other runs in its sub-folders ({shown}), which no other run takes over or "
                         "deletes; choose another --output_dir")
    if not holds_run(folder):
        return "new"
    if overwrite:
        held = Path(model).resolve() if model and Path(model).exists() else None
        if held is not None and folder.resolve() in (held, *held.parents):
            raise UsageError(f"--overwrite_output_dir would delete {folder}, which holds the model that "
                             f"--model_name_or_path {model} loads; choose another --output_dir")
        return "overwrite"
    config = folder / RUN_CONFIG
    if not config.exists():
        raise UsageError(f"{folder} holds checkpoints or results of a run without {RUN_CONFIG}; "
                         "pass --overwrite_output_dir to delete them and start over, or choose another --output_dir")
    recorded = _read_record(config)
    if not resume:
        raise UsageError(f"{folder} already holds a run; pass --resume to continue it (same settings) "
                         "or --overwrite_output_dir to delete it and start over")
    diff = differing_keys(recorded, settings, free)
    if diff:
        raise UsageError(f"{folder} holds a run with other settings ({_differences(recorded, settings, diff)}); run "
                         "with the recorded settings, choose another --output_dir, or pass --overwrite_output_dir to "
                         "start over")
    if (folder / RESULTS).exists():
        read_results(folder / RESULTS)  # a results file that does not parse stops here, not after training
        return "done"
    return "resume"


def _read_record(path: Path) -> dict:
    try:
        recorded = read_json(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} does not parse ({e}); pass --overwrite_output_dir to start over") from None
    if not isinstance(recorded, dict):
        raise UsageError(f"{path} is not a mapping of settings; pass --overwrite_output_dir to start over")
    return recorded


def read_results(path: Path) -> dict:
    """A run's results.json; the scores and statistics written as null (not finite) come back as NaN."""
    result = _read_record(path)

    def nan(value):
        return math.nan if value is None else value

    result["scores"] = {k: nan(v) for k, v in result["scores"].items()}
    result["mean_non_source"] = nan(result["mean_non_source"])
    result["all_metrics"] = {lang: {k: nan(v) for k, v in m.items()} for lang, m in result["all_metrics"].items()}
    result["gates"] = {lang: g and {k: nan(v) for k, v in g.items()} for lang, g in result["gates"].items()}
    return result


def prepare_run_folder(folder: Path, settings: dict, action: str) -> None:
    """Delete another run's files when overwriting (the claim stays), then record the settings (before training)."""
    if action == "overwrite":
        for path in folder.iterdir():
            if path.name != LOCK_FILE:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / RUN_CONFIG, settings)


def checkpoint_defect(path: Path) -> Optional[str]:
    """Why the resume could not read checkpoint ``path`` (None when it can): the trainer state and the
    weights must exist, and every JSON, safetensors and torch.save file in it must parse (a save cut
    short by a kill or a full disk leaves a missing, empty or truncated file)."""
    from safetensors import safe_open

    if not (path / "trainer_state.json").is_file():
        return "no trainer_state.json"
    files = sorted(p for p in path.iterdir() if p.is_file())
    if not any(p.suffix == ".safetensors" or p.name == "pytorch_model.bin" for p in files):
        return "no model weights"
    for file in files:
        try:
            if file.suffix == ".json":
                json.loads(file.read_text(encoding="utf-8"))
            elif file.suffix == ".safetensors":
                with safe_open(str(file), framework="numpy"):
                    pass
            elif file.suffix in (".pt", ".pth", ".bin"):
                zipfile.ZipFile(file).close()  # torch.save's format; the directory at its end checks the length
        except Exception as e:  # noqa: BLE001 - each reader has its own errors; any of them means unreadable
            return f"{file.name} does not parse ({type(e).__name__})"
    return None


def last_complete_checkpoint(folder: Path) -> Optional[str]:
    """The newest checkpoint the resume can read; one cut short while being saved is skipped."""
    # not transformers.trainer_utils.get_last_checkpoint: it returns the newest checkpoint-* folder even
    # when its save was cut short, and resuming from that fails
    for path in reversed(checkpoints(folder)):
        defect = checkpoint_defect(path)
        if defect is None:
            return str(path)
        logger.warning("skipping the incomplete checkpoint %s (%s: interrupted while saving)", path, defect)
    return None


def finished_training(folder: Path) -> Optional[dict]:
    """For a run interrupted after training (while scoring): its ``train_runtime``, ``best_checkpoint`` and
    ``best_step``. None unless train_results.json parses: it is written after the best model is saved."""
    try:
        metrics = read_json(folder / TRAIN_RESULTS)
        runtime = metrics["train_runtime"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    try:
        state = read_json(folder / "trainer_state.json")
        best, step = state.get("best_model_checkpoint"), state.get("best_global_step")
    except (OSError, ValueError, AttributeError):
        best = step = None
    return {"train_runtime": runtime, "best_checkpoint": best, "best_step": step}


def prune_checkpoints(folder: Path) -> None:
    """Remove the checkpoint folders once the best model is saved in ``folder`` itself."""
    for path in checkpoints(folder):
        shutil.rmtree(path)


# the model settings a checkpoint's config.json holds, under their run_config.json names
_MODEL_KEYS = {"fusion_layer": "fusion_layer", "gate_init": "gate_init", "reduction": "reduction",
               "pooling": "sentence_pooling"}


def check_resume_checkpoint(path: str, settings: dict, runs: int) -> None:
    """Refuse ``--resume_from_checkpoint path`` for a command of several runs, a checkpoint the resume
    cannot read, or one of another setting: its run's run_config.json (or, without one, its config.json)
    must agree with ``settings``."""
    checkpoint = Path(path)
    if runs > 1:
        raise UsageError(f"--resume_from_checkpoint {path}: one run's checkpoint, but this command plans {runs} runs "
                         "(fusion settings x gate inits x seeds); give one of each, or use --resume to continue "
                         "each run from its own checkpoints")
    if not checkpoint.is_dir():
        raise UsageError(f"--resume_from_checkpoint {path}: no such folder")
    defect = checkpoint_defect(checkpoint)
    if defect:
        raise UsageError(f"--resume_from_checkpoint {path}: not a complete checkpoint ({defect})")
    record = checkpoint.parent / RUN_CONFIG
    if record.is_file():
        recorded = _read_record(record)
        diff = [k for k in differing_keys(recorded, settings) if k != "seed"]  # the checkpoint holds its RNG state
    else:
        config = _read_record(checkpoint / "config.json")
        recorded = {key: config.get(name) for key, name in _MODEL_KEYS.items()}
        # a bi-encoder's config names its class; the cross-encoder's settings have no architecture key
        biencoder = "DLFAForSentenceSimilarity" in (config.get("architectures") or [])
        recorded["architecture"] = BIENCODER if biencoder else None
        diff = sorted(k for k in (*_MODEL_KEYS, "architecture") if recorded[k] != settings.get(k))
    if diff:
        raise UsageError(f"--resume_from_checkpoint {path} is a checkpoint of another setting "
                         f"({_differences(recorded, settings, diff)})")
