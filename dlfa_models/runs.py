"""Run folders: the settings a run ran with, refusing another run's folder, resume checks, checkpoints.

A run folder holds ``run_config.json`` (written before training), checkpoints while
training, and at the end the best model, ``results.json`` and the ``*_results.json``
files. A folder is never silently shared by two different runs.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Optional

from .arguments import UsageError

logger = logging.getLogger(__name__)

RUN_CONFIG = "run_config.json"
RESULTS = "results.json"
# recorded in run_config.json but free to change on --resume: they affect scoring, not training
SCORING_KEYS = frozenset({"eval_langs", "eval_split", "backend", "do_eval", "do_predict"})
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(folder: Path) -> list[Path]:
    """The checkpoint-<step> folders, by step."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def holds_run(folder: Path) -> bool:
    return (folder / RUN_CONFIG).exists() or (folder / RESULTS).exists() or bool(checkpoints(folder))


def differing_keys(recorded: dict, settings: dict) -> list[str]:
    keys = (set(recorded) | set(settings)) - SCORING_KEYS
    return sorted(k for k in keys if recorded.get(k) != settings.get(k))


def check_run_folder(folder: Path, settings: dict, resume: bool, overwrite: bool) -> str:
    """What to do with ``folder`` for a run with ``settings`` (JSON-normalised):
    "new" (empty or no run yet), "overwrite" (delete the other run's files first),
    "resume" (same settings, continue) or "done" (same settings, results written).
    Raises ``UsageError`` for a folder holding another or an unknown run."""
    if not holds_run(folder):
        return "new"
    if overwrite:
        return "overwrite"
    config = folder / RUN_CONFIG
    if not config.exists():
        raise UsageError(f"{folder} holds checkpoints or results of a run without {RUN_CONFIG}; "
                         "pass --overwrite_output_dir to delete them and start over, or choose another --output_dir")
    recorded = json.loads(config.read_text(encoding="utf-8"))
    if not resume:
        raise UsageError(f"{folder} already holds a run; pass --resume to continue it (same settings) "
                         "or --overwrite_output_dir to delete it and start over")
    diff = differing_keys(recorded, settings)
    if diff:
        details = "; ".join(f"{k}: {recorded.get(k)!r} there, {settings.get(k)!r} now" for k in diff)
        raise UsageError(f"{folder} holds a run with other settings ({details}); run with the recorded "
                         "settings, choose another --output_dir, or pass --overwrite_output_dir to start over")
    return "done" if (folder / RESULTS).exists() else "resume"


def prepare_run_folder(folder: Path, settings: dict, action: str) -> None:
    """Delete another run's files when overwriting, then record the settings (before training)."""
    if action == "overwrite":
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_CONFIG).write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def last_complete_checkpoint(folder: Path) -> Optional[str]:
    """The newest checkpoint with its trainer state; an interrupted save (no trainer_state.json) is skipped."""
    # not transformers.trainer_utils.get_last_checkpoint: it returns the newest checkpoint-* folder even
    # when its save was cut short, and resuming from that fails
    for path in reversed(checkpoints(folder)):
        if (path / "trainer_state.json").is_file():
            return str(path)
        logger.warning("skipping the incomplete checkpoint %s (no trainer_state.json: interrupted while saving)", path)
    return None


def prune_checkpoints(folder: Path) -> None:
    """Remove the checkpoint folders once the best model is saved in ``folder`` itself."""
    for path in checkpoints(folder):
        shutil.rmtree(path)
