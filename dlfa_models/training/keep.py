"""What a finished run folder keeps (``--keep``): the whole model, only the AIF and head weights, or no weights.

Results, predictions, curves, settings and logs always stay; with ``weights`` or ``none`` the
saved model, its tokenizer, its model card, ``training_args.bin`` and a bi-encoder's
sentence-transformers module folders go (a study of many runs keeps its scores, not hundreds of MB
per run). Other sub-folders (checkpoints kept with ``--keep_checkpoints``) are left alone.
"""
from __future__ import annotations

import re
from pathlib import Path

from safetensors.torch import save_file

from ..sentence_transformers_compat import NORMALIZE_FOLDER, POOLING_FOLDER
from .run_claim import LOCK_FILE

KEEP_CHOICES = ("model", "weights", "none")
FUSION_WEIGHTS = "fusion.safetensors"
# the files of a run folder that are results, not model: settings, metrics, curves, predictions, the log
RESULT_FILES = re.compile(r"^(run_config|results|all_results|train_results|eval_results|predict_results|trainer_state"
                          r"|curves)\.json$|^predict_results_.+\.txt$|^train\.log$")


def fusion_state_dict(model) -> dict:
    """The AIF's and the task head's tensors of a DLFA model (contiguous copies, ready for safetensors)."""
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()
            if ".aif." in f".{k}" or k.startswith("classifier.")}


def apply_keep(folder: Path, keep: str, model) -> None:
    """Reduce a finished run ``folder`` to what ``keep`` says; ``model``: the model that was saved there."""
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
    if keep == "model":
        return
    kept = {FUSION_WEIGHTS, "config.json"} if keep == "weights" else set()
    if keep == "weights":
        save_file(fusion_state_dict(model), str(folder / FUSION_WEIGHTS))
    for path in folder.iterdir():  # folders (checkpoints kept with --keep_checkpoints) stay
        # the run's claim (run_claim.LOCK_FILE) is held by this command until it ends: never removed here
        if path.is_file() and path.name not in kept and path.name != LOCK_FILE and not RESULT_FILES.match(path.name):
            path.unlink()
    for name in (POOLING_FOLDER, NORMALIZE_FOLDER):  # a bi-encoder's sentence-transformers modules: model files
        module = folder / name
        if module.is_dir():
            for path in module.iterdir():
                path.unlink()
            module.rmdir()
