"""The interpreter's kernel tests under the GPU machine's Triton (``tests/second_triton.py``) with the
numpy it needs, and the clear stop when an older Triton's interpreter meets a newer numpy."""
import os
import subprocess
import sys

import numpy
import pytest
from packaging.version import Version

import second_triton

# fp32 and fp16, forward and every gradient, four shapes with a padding mask: every kernel
KERNEL_TESTS = ["tests/test_aif_triton.py", "-k", "test_output_and_all_gradients"]


def _pytest(args, env):
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"],  # with the header
                          cwd=second_triton.REPO, env=env, capture_output=True, text=True, timeout=1800)


def test_interpreter_kernel_tests_pass_under_the_gpu_machines_triton():
    env = second_triton.environment(dict(os.environ, TRITON_INTERPRET="1"))
    run = _pytest(KERNEL_TESTS, env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"dlfa: triton {second_triton.version()} (interpreter)" in run.stdout


def test_old_triton_interpreter_with_numpy_2_4_stops_with_a_clear_message(tmp_path):
    if Version(numpy.__version__) < Version("2.4"):
        pytest.skip(f"this environment's numpy {numpy.__version__} is one Triton 3.6's interpreter works with")
    env = second_triton.environment(dict(os.environ, TRITON_INTERPRET="1"))
    (tmp_path / "triton").symlink_to(second_triton.folder() / "triton", target_is_directory=True)  # not its numpy
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(second_triton.REPO)])
    run = _pytest(KERNEL_TESTS, env)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"Triton {second_triton.version()}'s interpreter fails on numpy {numpy.__version__}" in run.stderr
    assert "numpy<2.4" in run.stderr
