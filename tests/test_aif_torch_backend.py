"""The torch backend and the op's registration: gradcheck, opcheck, torch.compile, autocast."""
import pytest
import torch

from aif_check import NAMES, assert_matches_reference, random_mask, rel_err, run_module, run_reference
from dlfa_kernels import AIF, aif_reference
from dlfa_kernels.ops import aif_backward, aif_forward


def params64(E=8, r=2, seed=0):
    torch.manual_seed(seed)
    return [p.detach().double().requires_grad_() for p in AIF(E, r).parameters()]


def test_gradcheck_float64_with_mask():
    B, T, E = 3, 5, 8
    x = torch.randn(B, T, E, dtype=torch.float64, requires_grad=True)
    y = torch.randn(B, T, E, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    params = params64(E)

    def fn(x, y, *params):
        return aif_forward(x, y, mask, *params, "torch")[0]

    assert torch.autograd.gradcheck(fn, (x, y, *params), eps=1e-6, atol=1e-6)


def test_torch_backend_matches_reference_in_float64():
    B, T, E = 2, 7, 12
    x, y, dz = (torch.randn(B, T, E, dtype=torch.float64) for _ in range(3))
    mask = random_mask(B, T)
    params = params64(E, 3)
    z, *kept = aif_forward(x, y, mask, *params, "torch")
    grads = aif_backward(dz, x, y, mask, *params, *kept, "torch")
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    ref = aif_reference(xr, yr, mask.double(), *params)
    expected = torch.autograd.grad(ref, [xr, yr, *params], dz)
    torch.testing.assert_close(z, ref)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("masked", [True, False], ids=["mask", "no-mask"])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_opcheck(backend, masked):
    B, T, E = 2, 6, 16
    dtype = torch.float64 if backend == "torch" else torch.float32
    x = torch.randn(B, T, E, dtype=dtype, requires_grad=True)
    y = torch.randn(B, T, E, dtype=dtype, requires_grad=True)
    params = [p.detach().to(dtype).requires_grad_() for p in AIF(E, 4).parameters()]
    mask = random_mask(B, T) if masked else None
    torch.library.opcheck(aif_forward, (x, y, mask, *params, backend))
    z, *kept = aif_forward(x, y, mask, *params, backend)
    torch.library.opcheck(aif_backward, (torch.randn_like(z), x.detach(), y.detach(), mask,
                                         *[p.detach() for p in params], *[t.detach() for t in kept], backend))


class _Block(torch.nn.Module):
    """A small model around AIF: projection, fusion, head."""

    def __init__(self, E):
        super().__init__()
        self.proj = torch.nn.Linear(E, E)
        self.aif = AIF(E, 4, backend="torch")
        self.head = torch.nn.Linear(E, 1)

    def forward(self, x, y, mask):
        return self.head(self.aif(self.proj(x), y, mask)).sum()


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    B, T, E = 2, 9, 16
    model = _Block(E)
    x, y = torch.randn(B, T, E), torch.randn(B, T, E, requires_grad=True)
    mask = random_mask(B, T)
    eager_loss = model(x, y, mask)
    eager_grads = torch.autograd.grad(eager_loss, [y, *model.parameters()])
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss = compiled(x, y, mask)
    grads = torch.autograd.grad(loss, [y, *model.parameters()])
    torch.testing.assert_close(loss, eager_loss)
    for got, want in zip(grads, eager_grads):
        torch.testing.assert_close(got, want)


def test_torch_compile_inductor_runs():
    torch.manual_seed(1)
    model = _Block(16)
    x, y, mask = torch.randn(2, 5, 16), torch.randn(2, 5, 16), random_mask(2, 5)
    out = torch.compile(model, fullgraph=True)(x, y, mask)
    torch.testing.assert_close(out, model(x, y, mask), rtol=1e-4, atol=1e-4)


def test_autocast_computes_in_autocast_dtype_like_linear():
    torch.manual_seed(2)
    B, T, E = 2, 8, 32
    module = AIF(E, 4, backend="torch")
    x = torch.randn(B, T, E, requires_grad=True)
    y = torch.randn(B, T, E)
    mask = random_mask(B, T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = module(x, y, mask)
        linear_out = module.local_down(x)
    assert z.dtype == linear_out.dtype == torch.bfloat16
    z.float().sum().backward()
    assert x.grad.dtype == torch.float32
    assert all(p.grad.dtype == torch.float32 for p in module.parameters())
    ref = aif_reference(x.double(), y.double(), mask.double(), *[p.double() for p in module.parameters()])
    assert (z.double() - ref).norm() / ref.norm() < 2e-2


def test_imports_and_runs_without_triton():
    """macOS/Windows have no triton: the package imports, "auto" runs torch, "triton" says why it can't."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['triton'] = None\n"  # makes `import triton` fail
        "import torch, dlfa_kernels\n"
        "assert not dlfa_kernels.triton_available()\n"
        "z = dlfa_kernels.AIF(16, 4)(torch.randn(2, 3, 16), torch.randn(2, 3, 16))\n"
        "assert z.shape == (2, 3, 16)\n"
        "try:\n"
        "    dlfa_kernels.AIF(16, 4, backend='triton')(torch.randn(2, 3, 16), torch.randn(2, 3, 16))\n"
        "except RuntimeError as e:\n"
        "    assert 'needs the triton package' in str(e)\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


def test_autocast_leaves_float64_alone_like_linear():
    """autocast lowers float32 (and float16) tensors, never float64: nn.Linear keeps fp64, so does AIF."""
    torch.manual_seed(3)
    B, T, E = 2, 6, 16
    module = AIF(E, 4).double()
    x, y = torch.randn(B, T, E, dtype=torch.float64), torch.randn(B, T, E, dtype=torch.float64)
    mask = random_mask(B, T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = module(x, y, mask)
        linear_out = module.local_down(x)
    assert z.dtype == linear_out.dtype == torch.float64
    torch.testing.assert_close(z, aif_reference(x, y, mask, *module.parameters()))


def test_float16_sum_past_the_float16_range_stays_finite():
    """X = 40000, Y = 30000 are valid float16 and so is any Z between them; X + Y = 70000 is not."""
    torch.manual_seed(4)
    B, T, E = 2, 5, 16
    module = AIF(E, 4, backend="torch").half()
    x = (torch.full((B, T, E), 40000.0) + 100 * torch.randn(B, T, E)).half()
    y = (torch.full((B, T, E), 30000.0) + 100 * torch.randn(B, T, E)).half()
    mask, dz = random_mask(B, T), torch.randn(B, T, E).half()
    assert torch.isinf(x + y).all()  # what a float16 W would be
    got = run_module(module, x, y, mask, dz)
    want = run_reference(module, x, y, mask, dz, torch.float64)
    for name, g, w in zip(NAMES, got, want):
        assert torch.isfinite(g).all(), name
        assert rel_err(g, w) < 2e-3, (name, rel_err(g, w))


@pytest.mark.parametrize("mask_kind", ["none", "int", "bool", "float"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_torch_backend_output_and_all_gradients(dtype, mask_kind):
    """Every dtype the CPU default runs, odd shape, an all-padding row, within 2 × the same-dtype reference's error."""
    torch.manual_seed(5)
    B, T, E = 3, 13, 36
    module = AIF(E, 4, backend="torch").to(dtype)
    x, y, dz = (torch.randn(B, T, E, dtype=dtype) for _ in range(3))
    mask = {"none": None, "int": random_mask(B, T), "bool": random_mask(B, T).bool(),
            "float": random_mask(B, T).float()}[mask_kind]
    assert_matches_reference(run_module(module, x, y, mask, dz), module, x, y, mask, dz, dtype)


def test_torch_backend_strided_inputs():
    torch.manual_seed(6)
    B, T, E = 2, 7, 24
    module = AIF(E, 4, backend="torch")
    x = torch.randn(B, T, E + 9)[:, :, 5:5 + E]
    y = torch.randn(B, E, T).transpose(1, 2)
    dz = torch.randn(T, B, E).transpose(0, 1)
    mask = random_mask(B, T)
    assert_matches_reference(run_module(module, x, y, mask, dz), module, x, y, mask, dz, torch.float32)
