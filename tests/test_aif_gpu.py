"""GPU-only checks of the compiled kernels: bf16, the CPU suite's shapes, huge tensors and grids.

The Triton interpreter reads bfloat16 wrongly and cannot reach 2**31 elements in
reasonable time, so these run only where a CUDA GPU is present.
"""
import pytest
import torch

from aif_check import assert_matches_reference, random_mask, run_module
from dlfa_kernels import AIF

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: compiled kernels and bf16"),
]
# (B, T, E, reduction); tests/aot_compile.py compiles every launch of these tests from these constants
SHAPES = [(1, 1, 40, 4), (2, 130, 96, 4), (3, 17, 40, 5), (2, 9, 96, 3), (32, 128, 768, 4), (4, 77, 1024, 4)]
DTYPES = [torch.bfloat16, torch.float16, torch.float32]
REDUCTION = 4  # of the two tests below
HUGE = (1, (2**31) // 768 + 64, 768)  # (B, T, E): 2**31 + 49152 elements per tensor, bf16: 4.3 GB each
LAYOUTS = ["contiguous", "e_outer"]
MANY_PROGRAMS = (70_000, 2, 40)  # 70,000 sequences: > 65,535 programs on axis 0 of every token-tile and pool grid


def inputs(B, T, E, r, dtype, seed):
    torch.manual_seed(seed)
    module = AIF(E, r, backend="triton").to("cuda", dtype)
    x, y, dz = (torch.randn(B, T, E, device="cuda", dtype=dtype) for _ in range(3))
    return module, x, y, dz, random_mask(B, T).cuda()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_compiled_kernels_match_reference(shape, dtype):
    module, x, y, dz, mask = inputs(*shape, dtype, seed=sum(shape))
    results = run_module(module, x, y, mask, dz)
    assert_matches_reference(results, module, x, y, mask, dz, dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_input_past_2_31_elements(layout):
    """Offsets past 2**31 elements, along T (contiguous) or along a non-innermost E (a transposed view)."""
    B, T, E = HUGE
    module, _, _, _, _ = inputs(1, 1, E, REDUCTION, torch.bfloat16, seed=0)
    if layout == "contiguous":
        x, y = (torch.randn(B, T, E, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    else:  # E has stride T: offs_e * stride_e passes 2**31
        x, y = (torch.randn(B, E, T, device="cuda", dtype=torch.bfloat16).transpose(1, 2) for _ in range(2))
    x.requires_grad_()
    assert x.numel() > 2**31
    z = module(x, y)
    assert torch.isfinite(z[:, -8:]).all()
    # the last tokens, past element 2**31, equal the same tokens fused on their own with the same mean
    tail_x, tail_y = x[:, -8:].detach().float(), y[:, -8:].float()
    p = {n: t.detach().float() for n, t in module.named_parameters()}
    g = (x.detach().float().sum(1) + y.float().sum(1)) / T
    gb = torch.relu(g @ p["global_down.weight"].t() + p["global_down.bias"]) @ p["global_up.weight"].t()
    gb = gb + p["global_up.bias"]
    h = torch.relu((tail_x + tail_y) @ p["local_down.weight"].t() + p["local_down.bias"])
    m = torch.sigmoid(h @ p["local_up.weight"].t() + p["local_up.bias"] + gb[:, None])
    ref = tail_y + m * (tail_x - tail_y)
    assert (z[:, -8:].float() - ref).norm() / ref.norm() < 2e-2
    z.backward(torch.ones_like(z))
    assert torch.isfinite(x.grad[:, -8:]).all()
    assert all(torch.isfinite(q.grad).all() for q in module.parameters())


def test_grid_past_65535_programs():
    B, T, E = MANY_PROGRAMS
    module, x, y, dz, mask = inputs(B, T, E, REDUCTION, torch.float32, seed=1)
    results = run_module(module, x, y, mask, dz)
    assert_matches_reference(results, module, x, y, mask, dz, torch.float32)
