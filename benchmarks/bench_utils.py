"""Benchmark helpers: providers, shapes, GPU timing with CUDA events and CUDA graphs, the minimum
bytes of docs/design.md.

On a CUDA GPU every provider runs at the real shapes; on a CPU eager, torch.compile and
the op's torch backend (the CPU default) run at CPU shapes, and the GPU providers are
skipped with the reason. Cases run in the order of ``SHAPES`` and ``PROVIDERS``, the fused op
first in each shape, ``AUTOTUNE`` last after every shape (benchmarks/conftest.py).
"""
from __future__ import annotations

import pytest
import torch

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"

# name: (B, T, E)
GPU_SHAPES = {
    "mbert-b32-t128": (32, 128, 768),
    "long-b16-t512-e1024": (16, 512, 1024),
    "long-b8-t512": (8, 512, 768),
    "large-b16-t256-e1024": (16, 256, 1024),
    "one-b1-t128": (1, 128, 768),
}
CPU_SHAPES = {"cpu-b16-t128-e384": (16, 128, 384), "cpu-b1-t32-e96": (1, 32, 96)}
SHAPES = GPU_SHAPES if ON_GPU else CPU_SHAPES
AUTOTUNE = "compile-max-autotune"
# "-graph": the provider's pass captured in a CUDA graph and replayed, without the host's launch overhead
PROVIDERS = ["fused", "compile", "fused-graph", "compile-graph", "eager", "torch", AUTOTUNE]
GPU_ONLY = {"fused": "the fused Triton kernels need a CUDA GPU (the CPU interpreter is no timing)",
            "fused-graph": "CUDA graphs need a CUDA GPU", "compile-graph": "CUDA graphs need a CUDA GPU",
            AUTOTUNE: "max-autotune tunes GPU kernels; on a CPU it only adds minutes of compile"}


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


def cuda_graphed(step, setup, n_inputs: int):
    """(replay, index): ``step(setup(i))`` captured in one CUDA graph per input set i, replayed as
    ``replay(index(i))``. Warm-up (compilation, allocations) runs on a side stream before each capture."""
    graphs = []
    for i in range(n_inputs):
        arg = setup(i)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step(arg)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(arg)
        graphs.append(graph)
    return (lambda i: graphs[i].replay()), (lambda i: i)


def saved_bytes(fn) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``fn()`` runs."""
    seen = {}

    def pack(t):
        seen[(t.data_ptr(), t.numel(), t.dtype)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


