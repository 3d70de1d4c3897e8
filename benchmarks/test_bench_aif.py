"""The AIF op: forward, backward, forward+backward for fused / torch.compile / eager / the op's torch
backend (what ``auto`` runs on a CPU) / torch.compile max-autotune, fp32 and bf16; fused and
torch.compile also captured in CUDA graphs ("-graph": forward and forward+backward), where the
host's launch overhead, of the order of the GPU work at mBERT-base, drops out.

Every run records the bytes autograd saves for backward in ``extra_info``. GPU runs also
record the median GPU time (CUDA events, inputs rotated past the L2 cache), achieved GB/s
against the minimum traffic of docs/design.md (forward: read X, Y, write Z; backward: read X, Y, dZ,
write dX, dY) and its fraction of the measured copy bandwidth, and peak memory.
"""
import pytest
import torch

from bench_utils import (
    AUTOTUNE, DEVICE, ON_GPU, PROVIDERS, SHAPES, cuda_graphed, gpu_median_ms, min_bytes, saved_bytes,
    skip_if_unavailable,
)
from dlfa_kernels import AIF, aif, aif_reference

PASSES = ["forward", "backward", "forward+backward"]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
N_INPUT_SETS = 4 if ON_GPU else 1  # 4 sets of X, Y, dZ at mBERT-base bf16: 76 MB, past a 50 MB L2
_COMPILED = {}


def op_for(provider: str):
    """(x, y, mask, *params) -> z for one provider (a "-graph" provider: the op it captures)."""
    provider = provider.removesuffix("-graph")
    if provider in ("fused", "torch"):
        backend = "triton" if provider == "fused" else "torch"
        return lambda x, y, mask, *p: aif(x, y, mask, *p, backend=backend)
    if provider == "eager":
        return aif_reference
    mode = "max-autotune" if provider == AUTOTUNE else "default"
    if mode not in _COMPILED:
        _COMPILED[mode] = torch.compile(aif_reference, mode=mode, dynamic=False)
    return _COMPILED[mode]


def make_inputs(shape, dtype, masked: bool):
    B, T, E = shape
    torch.manual_seed(0)
    module = AIF(E, 4).to(DEVICE, dtype)
    params = [p.detach().requires_grad_() for p in module.parameters()]
    sets = []
    for _ in range(N_INPUT_SETS):
        x, y, dz = (torch.randn(B, T, E, device=DEVICE, dtype=dtype) for _ in range(3))
        mask = None
        if masked:
            lengths = torch.randint(T // 4, T + 1, (B,), device=DEVICE)
            mask = (torch.arange(T, device=DEVICE)[None] < lengths[:, None]).long()
        sets.append((x.requires_grad_(), y.requires_grad_(), mask, dz))
    return params, sets


@pytest.mark.parametrize("masked", [True, False], ids=["mask", "nomask"])
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("provider,which", [(p, w) for p in PROVIDERS for w in PASSES
                                            if not (p.endswith("-graph") and w == "backward")])
def test_aif_op(benchmark, provider, which, dtype_name, shape_name, masked, copy_bandwidth_gbps):
    skip_if_unavailable(provider)
    graphed = provider.endswith("-graph")  # backward alone is not captured (its forward+backward is)
    shape, dtype = SHAPES[shape_name], DTYPES[dtype_name]
    params, sets = make_inputs(shape, dtype, masked)
    op = op_for(provider)
    sync = torch.cuda.synchronize if ON_GPU else (lambda: None)

    def forward(i):
        x, y, mask, _ = sets[i]
        with torch.no_grad():
            return op(x, y, mask, *params)

    def setup_backward(i):
        x, y, mask, dz = sets[i]
        return op(x, y, mask, *params), dz

    def backward(arg):
        z, dz = arg
        z.backward(dz)

    def forward_backward(i):
        x, y, mask, dz = sets[i]
        op(x, y, mask, *params).backward(dz)

    step, setup = {
        "forward": (forward, lambda i: i),
        "backward": (backward, setup_backward),
        "forward+backward": (forward_backward, lambda i: i),
    }[which]
    if graphed:
        step, setup = cuda_graphed(step, setup, N_INPUT_SETS)
    counter = iter(range(10**9))

    def pedantic_setup():
        return (setup(next(counter) % N_INPUT_SETS),), {}

    def timed(arg):
        step(arg)
        sync()

    for _ in range(2):  # compile and warm up outside the timed rounds (graphs: captured above)
        timed(setup(0))
    benchmark.pedantic(timed, setup=pedantic_setup, rounds=30 if ON_GPU else 5, warmup_rounds=1)
    B, T, E = shape
    info = benchmark.extra_info
    info.update(provider=provider, which=which, dtype=dtype_name, shape=shape_name, masked=masked,
                B=B, T=T, E=E, min_bytes=min_bytes(B, T, E, dtype, which))
    x, y, mask, _ = sets[0]
    info["saved_bytes"] = saved_bytes(lambda: op(x, y, mask, *params))
    if ON_GPU:
        ms = gpu_median_ms(step, setup, N_INPUT_SETS)
        info.update(gpu_median_ms=ms, gbps=info["min_bytes"] / ms / 1e6, copy_gbps=copy_bandwidth_gbps)
        info["bandwidth_fraction"] = info["gbps"] / copy_bandwidth_gbps
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        forward_backward(0)
        torch.cuda.synchronize()
        info["peak_bytes"] = torch.cuda.max_memory_allocated() - base
