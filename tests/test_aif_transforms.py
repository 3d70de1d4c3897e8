"""AIF under torch.func transforms, forward-mode AD and double backward: right answers, never zeros.

The op has no forward-mode or double-backward formula of its own; ``aif`` computes
with differentiable torch ops there. Checked against the float64 reference and
finite differences on both backends.
"""
import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import functional_call, grad, jacrev, jvp, vmap

from aif_check import random_mask
from dlfa_kernels import AIF, aif_reference

# the triton backend takes fp32 (its kernels have no fp64); the torch backend is checked in fp64
DTYPE = {"torch": torch.float64, "triton": torch.float32}
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-9), torch.float32: dict(rtol=1e-4, atol=1e-5)}
BACKENDS = ["torch", "triton"]


def setup(backend, B=2, T=5, E=8, seed=0):
    torch.manual_seed(seed)
    dtype = DTYPE[backend]
    module = AIF(E, 2, backend=backend).to(dtype)
    x, y = torch.randn(B, T, E, dtype=dtype), torch.randn(B, T, E, dtype=dtype)
    return module, x, y, random_mask(B, T)


def reference(module, x, y, mask):
    """The same function on float64 copies, through autograd of the plain reference."""
    return aif_reference(x.double(), y.double(), mask.double(), *[p.double() for p in module.parameters()])


@pytest.mark.parametrize("backend", BACKENDS)
def test_jvp_matches_reference_and_finite_differences(backend):
    module, x, y, mask = setup(backend)
    tx, ty = torch.randn_like(x), torch.randn_like(y)
    z, tangent = jvp(lambda a, b: module(a, b, mask), (x, y), (tx, ty))
    _, expected = jvp(lambda a, b: reference(module, a, b, mask), (x.double(), y.double()),
                      (tx.double(), ty.double()))
    assert tangent.abs().max() > 0.1  # a silent zero would pass a loose comparison with a small tangent
    torch.testing.assert_close(tangent.double(), expected, **TOL[x.dtype])
    eps = 1e-6
    with torch.no_grad():
        fd = (reference(module, x.double() + eps * tx.double(), y.double() + eps * ty.double(), mask)
              - reference(module, x.double() - eps * tx.double(), y.double() - eps * ty.double(), mask)) / (2 * eps)
    torch.testing.assert_close(tangent.double(), fd, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(z.double(), reference(module, x, y, mask), **TOL[x.dtype])


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_mode_ad_with_dual_tensors(backend):
    module, x, y, mask = setup(backend, seed=1)
    tx = torch.randn_like(x)
    with fwAD.dual_level():
        tangent = fwAD.unpack_dual(module(fwAD.make_dual(x, tx), y, mask)).tangent
    _, expected = jvp(lambda a: reference(module, a, y, mask), (x.double(),), (tx.double(),))
    torch.testing.assert_close(tangent.double(), expected, **TOL[x.dtype])


@pytest.mark.parametrize("backend", BACKENDS)
def test_func_grad_and_jacrev_over_inputs_and_parameters(backend):
    module, x, y, mask = setup(backend, B=2, T=3, E=4, seed=2)
    params = dict(module.named_parameters())
    w = torch.randn_like(x)

    def loss(p, a):
        return (functional_call(module, p, (a, y, mask)) * w).sum()

    got_p, got_x = grad(loss, argnums=(0, 1))(params, x)
    xr = x.double().requires_grad_()
    pr = {k: v.detach().double().requires_grad_() for k, v in params.items()}
    ref = (aif_reference(xr, y.double(), mask.double(), *pr.values()) * w.double()).sum()
    want = torch.autograd.grad(ref, [xr, *pr.values()])
    torch.testing.assert_close(got_x.double(), want[0], **TOL[x.dtype])
    for (name, g), r in zip(got_p.items(), want[1:]):
        torch.testing.assert_close(g.double(), r, **TOL[x.dtype], msg=name)
    jac = jacrev(lambda a: module(a, y, mask))(x)
    jac_ref = torch.autograd.functional.jacobian(lambda a: reference(module, a, y, mask), x.double())
    assert jac.shape == x.shape + x.shape
    torch.testing.assert_close(jac.double(), jac_ref, **TOL[x.dtype])


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_over_a_stack_of_batches(backend):
    module, x, y, mask = setup(backend, seed=3)
    xs, ys = torch.stack([x, 2 * x]), torch.stack([y, -y])
    out = vmap(lambda a, b: module(a, b, mask))(xs, ys)
    for i in range(2):
        torch.testing.assert_close(out[i], module(xs[i], ys[i], mask), **TOL[x.dtype])


def test_double_backward_gradgradcheck_float64():
    module, x, y, mask = setup("torch", B=2, T=4, E=4, seed=4)
    params = list(module.parameters())

    def fn(a, b, *p):
        return torch.func.functional_call(module, dict(zip([n for n, _ in module.named_parameters()], p)), (a, b, mask))

    inputs = (x.requires_grad_(), y.requires_grad_(), *params)
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward_gradient_penalty_matches_reference(backend):
    """d/dθ of ‖∂L/∂x‖² (a gradient penalty) through create_graph=True."""
    module, x, y, mask = setup(backend, seed=5)
    w = torch.randn_like(x)

    def penalty_grads(fn, a, params):
        a = a.detach().requires_grad_()
        (gx,) = torch.autograd.grad((fn(a) * w.to(a.dtype)).sum(), a, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), params)

    got = penalty_grads(lambda a: module(a, y, mask), x, list(module.parameters()))
    pr = [p.detach().double().requires_grad_() for p in module.parameters()]
    want = penalty_grads(lambda a: aif_reference(a, y.double(), mask.double(), *pr), x.double(), pr)
    assert any(g.abs().max() > 0 for g in got)
    for g, r in zip(got, want):
        torch.testing.assert_close(g.double(), r, **TOL[x.dtype])
