"""The GPU machine's Triton beside the installed one, for the tests that must pass under both.

``.ci/second-triton.txt`` names it (triton==3.6.0, with the numpy < 2.4 its interpreter needs);
README.md's test command (and so ``.ci/run``) installs it into ``<venv>/second-triton``, outside the venv's site-packages:

    python -m pip install --no-deps --target <venv>/second-triton -r .ci/second-triton.txt

``DLFA_SECOND_TRITON`` names another folder. A process sees it first on its ``PYTHONPATH``
and keeps the venv's torch. Missing, the tests that need it fail in CI (``CI=true``) and skip
elsewhere, each with the command above.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / ".ci" / "second-triton.txt"


def version() -> str:
    """The pinned version of the second Triton, e.g. "3.6.0"."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            if req.name == "triton":
                (spec,) = req.specifier
                return spec.version
    raise AssertionError(f"{REQUIREMENTS} pins no triton")


def folder() -> Path:
    return Path(os.environ.get("DLFA_SECOND_TRITON") or Path(sys.prefix) / "second-triton")


def environment(base: dict) -> dict:
    """``base`` with the second Triton first on PYTHONPATH, then the repository; fails in CI, skips
    elsewhere when the folder lacks it."""
    where = folder()
    if not (where / "triton" / "__init__.py").is_file():
        why = (f"Triton {version()} (the GPU machine's) is not installed in {where}; install it with "
               f"`{sys.executable} -m pip install --no-deps --target {where} -r {REQUIREMENTS.relative_to(REPO)}` "
               "or name a folder that has it in DLFA_SECOND_TRITON")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    return dict(base, PYTHONPATH=os.pathsep.join([str(where), str(REPO)]))
