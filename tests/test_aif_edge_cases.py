"""Empty inputs, all-padding rows, NaN containment, saved activations — on both backends."""
import pytest
import torch

from aif_check import random_mask
from dlfa_kernels import AIF, aif_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BACKENDS = ["triton", "torch"]


def module_and_inputs(backend, B, T, E=40, seed=0):
    torch.manual_seed(seed)
    module = AIF(E, 4, backend=backend).to(DEVICE)
    x = torch.randn(B, T, E, device=DEVICE, requires_grad=True)
    y = torch.randn(B, T, E, device=DEVICE, requires_grad=True)
    return module, x, y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("B,T", [(0, 5), (3, 0), (0, 0)])
def test_empty_batch_or_sequence(backend, B, T):
    module, x, y = module_and_inputs(backend, B, T)
    z = module(x, y, torch.ones(B, T, device=DEVICE))
    assert z.shape == (B, T, 40)
    z.sum().backward()
    assert x.grad.shape == x.shape and y.grad.shape == y.shape
    for p in module.parameters():
        assert p.grad is not None and torch.equal(p.grad, torch.zeros_like(p))


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_padding_row_is_finite_and_uses_zero_mean(backend):
    module, x, y = module_and_inputs(backend, 3, 12, seed=1)
    mask = torch.ones(3, 12, device=DEVICE)
    mask[1] = 0
    z = module(x, y, mask)
    z.backward(torch.randn_like(z))
    assert torch.isfinite(z).all() and torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())
    # an all-padding row fuses with g = 0: same as the reference on that row alone
    ref = aif_reference(x[1:2].double(), y[1:2].double(), mask[1:2].double(),
                        *[p.double() for p in module.parameters()])
    torch.testing.assert_close(z[1:2].double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_padding_stays_out_of_real_tokens(backend):
    module, x, y = module_and_inputs(backend, 2, 10, seed=2)
    mask = torch.ones(2, 10, device=DEVICE)
    mask[0, 6:] = 0
    x_nan = x.detach().clone()
    x_nan[0, 7, 3] = float("nan")
    z = module(x_nan, y.detach(), mask)
    assert torch.isfinite(z[0, :6]).all() and torch.isfinite(z[1]).all()
    assert torch.isnan(z[0, 7]).any()  # the NaN token itself gets NaN, as the math says
    clean = module(x.detach(), y.detach(), mask)
    torch.testing.assert_close(z[0, :6], clean[0, :6])


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_real_token_propagates_like_the_reference(backend):
    module, x, y = module_and_inputs(backend, 1, 6, seed=3)
    x_nan = x.detach().clone()
    x_nan[0, 2, 0] = float("nan")
    z = module(x_nan, y.detach())
    ref = aif_reference(x_nan, y.detach(), None, *module.parameters())
    assert torch.equal(torch.isnan(z), torch.isnan(ref))


def _saved_for_backward(fn):
    """The distinct tensors autograd saves while ``fn()`` runs, and fn's result."""
    saved = {}

    def pack(t):
        saved[(t.data_ptr(), t.numel())] = t
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return list(saved.values()), out


def test_triton_saves_x_y_the_hidden_activation_and_small_tensors_for_backward():
    """Besides X and Y, the triton backend keeps h (B, T, H) in the input dtype, a quarter of X at r = 4,
    so its backward skips the down-projection GEMM; everything else it keeps is O(B·E)."""
    B, T, E = 2, 24, 40
    module, x, y = module_and_inputs("triton", B, T, E, seed=4)
    mask = random_mask(B, T).to(DEVICE)
    saved, z = _saved_for_backward(lambda: module(x, y, mask))
    big = [t for t in saved if t.numel() >= B * T * E]
    assert len(big) == 2, [tuple(t.shape) for t in saved]
    assert {t.data_ptr() for t in big} == {x.data_ptr(), y.data_ptr()}
    hidden = [t for t in saved if t.shape == (B, T, E // 4)]
    assert len(hidden) == 1 and hidden[0].dtype == x.dtype
    rest = [t for t in saved if t.numel() < B * T * E and t is not hidden[0]]
    assert all(t.numel() <= max(B * T, B * (E + E // 4), E * E // 4) for t in rest), [tuple(t.shape) for t in rest]
    z.sum().backward()


def test_torch_backend_keeps_gate_and_hidden_and_saves_less_than_autograd():
    """The CPU path keeps M (B, T, E) and h (B, T, H) to skip recomputing GEMMs, and still
    saves fewer bytes than autograd of the reference (which keeps W, h, M, 1 − M, X, Y)."""
    B, T, E = 2, 24, 40
    module, x, y = module_and_inputs("torch", B, T, E, seed=4)
    mask = random_mask(B, T).to(DEVICE)
    saved, z = _saved_for_backward(lambda: module(x, y, mask))
    shapes = sorted(tuple(t.shape) for t in saved if t.numel() >= B * T * E // 4)
    assert shapes == [(B, T, E // 4), (B, T, E), (B, T, E), (B, T, E)], shapes
    assert {x.data_ptr(), y.data_ptr()} <= {t.data_ptr() for t in saved}
    reference_saved, _ = _saved_for_backward(lambda: aif_reference(x, y, mask, *module.parameters()))
    nbytes = sum(t.numel() * t.element_size() for t in saved)
    assert nbytes < 0.7 * sum(t.numel() * t.element_size() for t in reference_saved)
    z.sum().backward()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("poison", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_padding_is_isolated_in_forward_and_exact_in_backward(backend, poison):
    """What holds with a non-finite value at a padded position of sequence 0:

    forward: every output but the poisoned token's own equals the clean run's (the
    global mean never sees padding); backward: the gradients are the exact derivative,
    which the padded token's own output feeds, so sequence 0's input gradients and the
    parameter gradients turn non-finite as autograd of the reference does, while
    sequence 1 stays finite; cleaning the padding upstream makes all finite.
    """
    module, x, y = module_and_inputs(backend, 2, 10, seed=5)
    mask = torch.ones(2, 10, device=DEVICE)
    mask[0, 6:] = 0
    dz = torch.randn(2, 10, 40, device=DEVICE)
    dz[0, 6:] = 0  # even a zero upstream gradient at padding does not help: 0·NaN is NaN
    x_bad = x.detach().clone()
    x_bad[0, 7, 3] = poison

    def run(fn, xin):
        xin = xin.detach().clone().requires_grad_()
        z = fn(xin)
        grads = torch.autograd.grad(z, [xin, *module.parameters()], dz)
        return z.detach(), grads[0], grads[1:]

    params = list(module.parameters())
    z_clean, _, _ = run(lambda a: module(a, y.detach(), mask), x)
    z, dx, dparams = run(lambda a: module(a, y.detach(), mask), x_bad)
    torch.testing.assert_close(z[0, :6], z_clean[0, :6], rtol=0, atol=0)
    torch.testing.assert_close(z[1], z_clean[1], rtol=0, atol=0)
    torch.testing.assert_close(z[0, 8:], z_clean[0, 8:], rtol=0, atol=0)  # other padding: the mean is clean

    _, dx_ref, dparams_ref = run(lambda a: aif_reference(a, y.detach(), mask, *params), x_bad)
    assert not torch.isfinite(dx[0, :6]).any() and not torch.isfinite(dx_ref[0, :6]).any()
    assert torch.isfinite(dx[1]).all() and torch.isfinite(dx_ref[1]).all()
    # which elements turn non-finite depends on how relu' is taken at NaN: both do turn
    assert not all(torch.isfinite(g).all() for g in dparams)
    assert not all(torch.isfinite(g).all() for g in dparams_ref)

    for clean in (torch.nan_to_num, lambda a: a.masked_fill(mask[..., None] == 0, 0)):
        _, dx_fixed, dparams_fixed = run(lambda a: module(clean(a), y.detach(), mask), x_bad)
        assert torch.isfinite(dx_fixed).all() and all(torch.isfinite(g).all() for g in dparams_fixed)
