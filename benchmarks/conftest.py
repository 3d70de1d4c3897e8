"""Benchmark fixtures and hooks: the measured copy bandwidth, versions recorded in the JSON,
the order of the cases, and three options that keep a run inside a time limit.

Order: shape by shape in the order of ``SHAPES``, in each shape the providers in the order of
``PROVIDERS`` (the fused op and torch.compile first); then the torch.compile max-autotune cases
(``AUTOTUNE``), whose cold compile can take minutes, after every other case, shape by shape.
``pytest benchmarks/ --collect-only`` lists them in that order.

- ``--bench-select NAME=V1,V2`` (repeatable) keeps only the cases whose parameter NAME
  (provider, which, dtype_name, shape_name, masked; aif_backend) is one of the values;
  cases without that parameter stay;
- ``--bench-budget SECONDS`` skips, with that reason, every case but max-autotune's that would
  start after SECONDS of the session: a budget cuts the last shapes, never the first;
- ``--autotune-budget SECONDS`` likewise for the max-autotune cases, counted from the start of
  the first of them.
"""
from __future__ import annotations

import datetime
import platform
import subprocess
import time

import pytest
import torch

from bench_utils import AUTOTUNE, ON_GPU, PROVIDERS, SHAPES, gpu_median_ms

_SESSION_START = time.monotonic()
_AUTOTUNE_START = []  # when the first max-autotune case started


def pytest_addoption(parser):
    group = parser.getgroup("dlfa", "AIF benchmarks")
    group.addoption("--bench-select", action="append", default=[], metavar="NAME=V1,V2",
                    help="run only cases whose parameter NAME (provider, which, dtype_name, shape_name, masked) "
                         "is one of the values; repeatable, e.g. --bench-select dtype_name=bf16 "
                         "--bench-select masked=True")
    group.addoption("--bench-budget", type=float, default=None, metavar="SECONDS",
                    help="skip the cases (but max-autotune's) that would start after SECONDS of the session "
                         "(they say so)")
    group.addoption("--autotune-budget", type=float, default=None, metavar="SECONDS",
                    help="skip the max-autotune cases that would start after SECONDS from the first of them")


def _selection(config) -> dict[str, set[str]]:
    wanted = {}
    for item in config.getoption("--bench-select"):
        name, sep, values = item.partition("=")
        if not sep or not values:
            raise pytest.UsageError(f"--bench-select wants NAME=V1,V2, got {item!r}")
        wanted.setdefault(name, set()).update(values.split(","))
    return wanted


def _params(item) -> dict:
    return getattr(getattr(item, "callspec", None), "params", {})


def _order(item) -> tuple:
    params = _params(item)
    shape = params.get("shape_name")
    provider = params.get("provider")
    return (provider == AUTOTUNE,
            list(SHAPES).index(shape) if shape in SHAPES else len(SHAPES),
            PROVIDERS.index(provider) if provider in PROVIDERS else len(PROVIDERS))


def pytest_collection_modifyitems(config, items):
    wanted = _selection(config)
    all_params = {name for item in items for name in _params(item)}
    unknown = sorted(set(wanted) - all_params)
    if unknown:
        raise pytest.UsageError(f"--bench-select: no benchmark has the parameter(s) {unknown}; "
                                f"known: {sorted(all_params)}")
    keep, drop = [], []
    for item in items:  # a selection applies to the cases that have that parameter
        params = _params(item)
        ok = all(str(params[name]) in values for name, values in wanted.items() if name in params)
        (keep if ok else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = sorted(keep, key=_order)  # stable: within a shape and provider, the collected order


def pytest_runtest_setup(item):
    now = time.monotonic()
    if _params(item).get("provider") == AUTOTUNE:
        if not _AUTOTUNE_START:
            _AUTOTUNE_START.append(now)
        option, start = "--autotune-budget", _AUTOTUNE_START[0]
    else:
        option, start = "--bench-budget", _SESSION_START
    budget = item.config.getoption(option)
    if budget is not None and now - start > budget:
        pytest.skip(f"time budget of {budget:g} s spent ({option})")


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
