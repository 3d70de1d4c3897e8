"""Which implementation runs the op: "triton" (fused kernels) or "torch" (plain PyTorch)."""
from __future__ import annotations

import functools
import importlib.util
import os

import torch

BACKENDS = ("auto", "triton", "torch")
ENV_VAR = "DLFA_BACKEND"


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when Triton imports (it is absent on macOS and Windows)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
    except Exception:  # a broken install counts as absent
        return False
    return True


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def check_backend_name(backend: str, source: str = "backend") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"{source} must be one of {BACKENDS}, got {backend!r}")
    return backend


def check_backend_choice(backend: str) -> str:
    """Check ``backend`` and, when it is "auto", the ``DLFA_BACKEND`` override; returns the choice in force."""
    check_backend_name(backend)
    if backend == "auto":
        backend = check_backend_name(os.environ.get(ENV_VAR, "auto"), ENV_VAR)
    return backend


TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """Turn "auto" into "triton" or "torch" for tensors on ``device``; check an explicit choice.

    ``DLFA_BACKEND`` overrides "auto". "auto" picks triton for fp16/bf16/fp32 GPU
    tensors when Triton works, torch otherwise (float64 has no kernels, and the
    interpreter computes bfloat16 wrongly).
    """
    backend = check_backend_choice(backend)
    if backend == "auto":
        kernels_fit = dtype in TRITON_DTYPES and not (dtype == torch.bfloat16 and interpreting())
        return "triton" if device.type == "cuda" and kernels_fit and triton_available() else "torch"
    if backend == "triton":
        if dtype not in TRITON_DTYPES:
            raise TypeError(f"backend='triton' supports float16, bfloat16 and float32, got {dtype}; "
                            "use backend='torch' (or 'auto') for float64")
        if dtype == torch.bfloat16 and interpreting():
            raise TypeError("backend='triton' cannot run bfloat16 under the Triton interpreter "
                            "(TRITON_INTERPRET=1), which computes bfloat16 dots wrongly; use float16 or "
                            "float32, or backend='torch' (or 'auto')")
        if not triton_available():
            raise RuntimeError("backend='triton' needs the triton package, which is not installed")
        if device.type != "cuda" and not interpreting():
            raise ValueError(
                f"backend='triton' needs CUDA tensors (got device {device}); "
                "set TRITON_INTERPRET=1 to run the kernels on the CPU, or use backend='torch'"
            )
    return backend
