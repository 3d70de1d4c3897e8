"""What users call stays where it was: the public names, the ``dlfa-train`` console script and the
documented ``python -m`` commands (README.md, docs/)."""
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dlfa_kernels
import dlfa_models
from dlfa_models.training import run

ROOT = Path(__file__).resolve().parents[1]
# the public names before the package was regrouped (others may be added, none removed)
MODELS_NAMES = {
    "DEFAULT_ENCODER", "DLFAConfig", "DLFAModel", "DLFAPreTrainedModel", "DLFAForSequenceClassification",
    "DLFAForTokenClassification", "DLFAModelOutput", "DLFASequenceClassifierOutput", "DLFATokenClassifierOutput",
    "apply_dlfa", "load_dlfa_pretrained", "encoder_path", "init_gate", "gate_statistics", "summarize_gate_stats",
    "GATE_HIST_BINS", "GATE_STAT_FIELDS",
}
KERNELS_NAMES = {"AIF", "aif", "aif_reference", "aif_gate", "masked_mean", "BACKENDS", "resolve_backend",
                 "triton_available"}


@pytest.mark.parametrize("package, names", [(dlfa_models, MODELS_NAMES), (dlfa_kernels, KERNELS_NAMES)],
                         ids=["dlfa_models", "dlfa_kernels"])
def test_every_public_name_imports(package, names):
    assert names <= set(package.__all__), names - set(package.__all__)
    for name in package.__all__:
        assert getattr(importlib.import_module(package.__name__), name) is not None, name
        exec(f"from {package.__name__} import {name}", {})


def test_the_console_script_resolves_to_the_command():
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="dlfa-train")
    assert script.load() is run.main  # the installed metadata (an older install names dlfa_models.train:main)
    declared = re.search(r'^dlfa-train = "([\w.]+):(\w+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared.groups() == ("dlfa_models.training.run", "main")
    assert getattr(importlib.import_module(declared[1]), declared[2]) is run.main


def _documented_modules() -> set[str]:
    """The ``python -m`` / ``torchrun -m`` modules of dlfa_models that README.md and docs/*.md show."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    return set(re.findall(r"-m (dlfa_models(?:\.\w+)+)", text))


def _python_m(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_the_documented_modules_are_the_entry_modules():
    assert _documented_modules() == {"dlfa_models.train", "dlfa_models.e5_offline"}


@pytest.mark.parametrize("module, usage", [("dlfa_models.train", "usage: dlfa-train"),
                                           ("dlfa_models.e5_offline", "usage: python -m dlfa_models.e5_offline")])
def test_documented_python_m_commands_run(module, usage):
    done = _python_m(module, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(usage), done.stdout[:200]


def test_python_m_train_passes_on_the_exit_status_of_a_bad_option():
    done = _python_m("dlfa_models.train", "--reduction", "0")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "dlfa-train: error: --reduction 0: must be in [1, inf)"
