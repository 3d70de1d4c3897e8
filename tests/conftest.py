"""Test setup: without a CUDA GPU, Triton kernels run under the interpreter on the CPU.

Triton's interpreter before 3.7 fails on numpy 2.4 and later (``only 0-dimensional arrays can be
converted to Python scalars`` at a ``range(0, T, BLOCK)`` loop); such a pair stops the run at once
with what to install instead of failing every kernel test.
"""
import os

import pytest
import torch
from packaging.version import Version

if not torch.cuda.is_available():
    # must be set before triton decorates the kernels (at import of dlfa_kernels)
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
os.environ.pop("DLFA_BACKEND", None)
os.environ["DLFA_CHECK_INPUTS"] = "1"  # the op checks mask values on every device (a sync on GPUs)

NUMPY_FOR_OLD_INTERPRETER = "numpy<2.4"  # what Triton < 3.7's interpreter needs


def _versions() -> tuple:
    """(triton version or None, numpy version) as strings."""
    import numpy
    try:
        import triton
    except ImportError:
        return None, numpy.__version__
    return triton.__version__, numpy.__version__


def pytest_report_header(config):
    triton_version, numpy_version = _versions()
    mode = "interpreter" if os.environ.get("TRITON_INTERPRET") == "1" else "compiled"
    return f"dlfa: triton {triton_version or 'absent'} ({mode}), numpy {numpy_version}, torch {torch.__version__}"


def pytest_configure(config):
    triton_version, numpy_version = _versions()
    if (os.environ.get("TRITON_INTERPRET") == "1" and triton_version is not None
            and Version(triton_version) < Version("3.7") and Version(numpy_version) >= Version("2.4")):
        raise pytest.UsageError(
            f"Triton {triton_version}'s interpreter fails on numpy {numpy_version}; "
            f"install '{NUMPY_FOR_OLD_INTERPRETER}' (e.g. pip install '{NUMPY_FOR_OLD_INTERPRETER}') or Triton >= 3.7")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """(tiny encoder folder, tiny task-data folder), made once per test module."""
    from tiny_assets import make_encoder, make_task_data

    root = tmp_path_factory.mktemp("assets")
    return make_encoder(root / "encoder"), make_task_data(root / "data")
