"""Benchmark helpers: providers, shapes, GPU timing with CUDA events, the minimum bytes of docs/design.md.

On a CUDA GPU every provider runs at the real shapes; on a CPU eager, torch.compile and
the op's torch backend (the CPU default) run at CPU shapes, and the GPU providers are
skipped with the reason.
"""
from __future__ import annotations

import pytest
import torch
ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"

# name: (B, T, E)
GPU_SHAPES = {
    "mbert-b32-t128": (32, 128, 768),
    "long-b8-t512": (8, 512, 768),
    "large-b16-t256-e1024": (16, 256, 1024),
    "one-b1-t128": (1, 128, 768),
}
CPU_SHAPES = {"cpu-b16-t128-e384": (16, 128, 384), "cpu-b1-t32-e96": (1, 32, 96)}
SHAPES = GPU_SHAPES if ON_GPU else CPU_SHAPES
PROVIDERS = ["eager", "compile", "compile-max-autotune", "torch", "fused"]
GPU_ONLY = {"fused": "the fused Triton kernels need a CUDA GPU (the CPU interpreter is no timing)",
            "compile-max-autotune": "max-autotune tunes GPU kernels; on a CPU it only adds minutes of compile"}


def skip_if_unavailable(provider: str) -> None:
    if not ON_GPU and provider in GPU_ONLY:
        pytest.skip(GPU_ONLY[provider])


def min_bytes(B: int, T: int, E: int, dtype: torch.dtype, which: str) -> int:
    """Minimum traffic: forward 3S (X, Y, Z), backward 5S (X, Y, dZ, dX, dY); S = one (B, T, E) tensor."""
    S = B * T * E * torch.empty((), dtype=dtype).element_size()
    return {"forward": 3 * S, "backward": 5 * S, "forward+backward": 8 * S}[which]


def gpu_median_ms(step, setup, n_inputs: int, reps: int = 50, warmup: int = 5) -> float:
    """Median GPU time of ``step(setup(i))`` by CUDA events; ``setup`` (untimed) cycles through input sets."""
    for i in range(warmup):
        step(setup(i % n_inputs))
    torch.cuda.synchronize()
    times = []
    for i in range(reps):
        arg = setup(i % n_inputs)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step(arg)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def saved_bytes(fn) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``fn()`` runs."""
    seen = {}

    def pack(t):
        seen[(t.data_ptr(), t.numel(), t.dtype)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


