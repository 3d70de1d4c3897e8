"""Benchmark fixtures and hooks: the measured copy bandwidth, versions recorded in the JSON."""
from __future__ import annotations

import datetime
import platform
import subprocess

import pytest
import torch

from bench_utils import ON_GPU, gpu_median_ms


@pytest.fixture(scope="session")
def copy_bandwidth_gbps() -> float | None:
    """Measured device-to-device copy bandwidth (bytes read + written), the ceiling for GB/s fractions."""
    if not ON_GPU:
        return None
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = gpu_median_ms(lambda _: dst.copy_(src), lambda i: i, 1, reps=20)
    return 2 * src.numel() / ms / 1e6


def _driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0]
    except Exception:
        return "n/a"


def pytest_benchmark_update_json(config, benchmarks, output_json):
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = "absent"
    output_json["dlfa"] = {
        "device": torch.cuda.get_device_name() if ON_GPU else platform.processor() or platform.machine(),
        "driver": _driver() if ON_GPU else "n/a",
        "torch": torch.__version__,
        "triton": triton_version,
        "date": datetime.date.today().isoformat(),
    }
