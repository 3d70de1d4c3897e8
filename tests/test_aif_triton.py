"""The fused Triton kernels (interpreter on the CPU, compiled on a GPU) against the float64 reference."""
import pytest
import torch

from aif_check import NAMES, assert_matches_reference, random_mask, rel_err, run_module, run_reference
from dlfa_kernels import AIF

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SHAPES = [  # B, T, E, reduction
    (1, 1, 40, 4),
    (2, 130, 96, 4),
    (3, 17, 40, 5),
    (2, 9, 96, 3),
    (18, 5, 40, 4),  # two blocks of 16 sequences in the kernels that loop over sequences
    (1, 7, 160, 4),  # fewer token tiles than E chunks: 32-wide E chunks, 16-row tiles for the weight gradients
]


def make(B, T, E, r, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    module = AIF(E, r, backend="triton").to(device=DEVICE, dtype=dtype)
    x = torch.randn(B, T, E, generator=g).to(DEVICE, dtype)
    y = torch.randn(B, T, E, generator=g).to(DEVICE, dtype)
    dz = torch.randn(B, T, E, generator=g).to(DEVICE, dtype)
    mask = random_mask(B, T, generator=g).to(DEVICE)
    return module, x, y, dz, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_output_and_all_gradients(shape, dtype):
    module, x, y, dz, mask = make(*shape, dtype, seed=sum(shape))
    results = run_module(module, x, y, mask, dz)
    assert_matches_reference(results, module, x, y, mask, dz, dtype)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_mask_kinds(mask_kind):
    module, x, y, dz, mask = make(3, 21, 40, 4, torch.float32, seed=7)
    mask = {"none": None, "bool": mask.bool(), "float": mask.float()}[mask_kind]
    results = run_module(module, x, y, mask, dz)
    assert_matches_reference(results, module, x, y, mask, dz, torch.float32)


@pytest.mark.parametrize("E", [384, 768, 1024])
def test_model_widths(E):
    module, x, y, dz, mask = make(2, 5, E, 4, torch.float32, seed=E)
    results = run_module(module, x, y, mask, dz)
    assert_matches_reference(results, module, x, y, mask, dz, torch.float32)


def test_non_contiguous_inputs_and_gradients():
    B, T, E = 2, 19, 40
    module, _, _, _, mask = make(B, T, E, 4, torch.float32, seed=3)
    g = torch.Generator().manual_seed(11)
    x_base = torch.randn(B, T, E + 24, generator=g).to(DEVICE).requires_grad_()
    y_base = torch.randn(B, E, T, generator=g).to(DEVICE).requires_grad_()
    x, y = x_base[:, :, 5:5 + E], y_base.transpose(1, 2)  # a slice and a transpose
    assert not x.is_contiguous() and not y.is_contiguous()
    other = torch.randn(B, T, 7, generator=g).to(DEVICE)
    weights = torch.randn(B, T, E + 7, generator=g).to(DEVICE)

    module.zero_grad(set_to_none=True)
    z = module(x, y, mask)
    # the upstream gradient arrives through torch.cat: a non-contiguous slice of weights
    (torch.cat([z, other], dim=-1) * weights).sum().backward()
    results = [z.detach(), x_base.grad[:, :, 5:5 + E], y_base.grad.transpose(1, 2)]
    results += [p.grad for p in module.parameters()]
    assert_matches_reference(results, module, x, y, mask, weights[..., :E], torch.float32)


def test_expanded_upstream_gradient():
    module, x, y, _, mask = make(2, 11, 40, 4, torch.float32, seed=5)
    module.zero_grad(set_to_none=True)
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    module(xr, yr, mask).sum().backward()  # dz is an expanded scalar: all strides 0
    results = [module(x, y, mask).detach(), xr.grad, yr.grad] + [p.grad for p in module.parameters()]
    assert_matches_reference(results, module, x, y, mask, torch.ones_like(x), torch.float32)


def test_backward_is_deterministic():
    module, x, y, dz, mask = make(3, 40, 96, 4, torch.float32, seed=9)
    first = run_module(module, x, y, mask, dz)
    second = run_module(module, x, y, mask, dz)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_output_poisoned_before_run_is_fully_written(monkeypatch):
    module, x, y, _, mask = make(2, 33, 40, 4, torch.float32, seed=4)
    real_empty = torch.empty

    def poisoned_empty(*args, **kwargs):
        out = real_empty(*args, **kwargs)
        return out.fill_(float("nan")) if out.is_floating_point() else out

    monkeypatch.setattr(torch, "empty", poisoned_empty)
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    z = module(xr, yr, mask)
    assert torch.isfinite(z).all()
    z.backward(torch.randn_like(z))
    grads = [xr.grad, yr.grad] + [p.grad for p in module.parameters()]
    assert all(torch.isfinite(gr).all() for gr in grads)


def test_fp16_inputs_whose_sum_overflows_fp16():
    """X + Y = 40000 + 30000 is past fp16's 65504 though X, Y, Z and every gradient are not."""
    module, x, y, dz, mask = make(2, 9, 40, 4, torch.float16, seed=12)
    x[0, 2, ::8], y[0, 2, ::8] = 40000.0, 30000.0
    dz[0, 2] *= 1e-4  # keeps dwd = dh_preᵀ·W within fp16
    assert torch.isinf(x[0, 2] + y[0, 2]).any()
    results = run_module(module, x, y, mask, dz)
    reference = run_reference(module, x, y, mask, dz, torch.float64)
    for name, out, ref in zip(NAMES, results, reference):
        assert torch.isfinite(ref).all(), name  # every true result is representable in fp16
        assert torch.isfinite(out).all(), f"{name} is not finite"
        # fp16 rounding of the output and of the GEMM operands; the fp16 reference itself is inf here
        assert rel_err(out, ref) < 2e-3, f"{name}: relative error {rel_err(out, ref):.2e}"
