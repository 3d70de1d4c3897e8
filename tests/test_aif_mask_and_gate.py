"""The mask the op accepts (dtypes, values, no gradient) and the gate it reports, on both backends."""
import pytest
import torch

from aif_check import random_mask
from dlfa_kernels import AIF, aif_reference
from dlfa_kernels.reference import aif_gate
from dlfa_models.gate_stats import GATE_HIST_BINS, gate_statistics

BACKENDS = ["triton", "torch"]


def module_and_inputs(backend, B=3, T=6, E=16, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    module = AIF(E, 4, backend=backend).to(dtype)
    x, y = (torch.randn(B, T, E, dtype=dtype) for _ in range(2))
    return module, x, y, random_mask(B, T)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mask_that_requires_grad_is_refused(backend):
    module, x, y, mask = module_and_inputs(backend)
    weights = mask.float().requires_grad_()
    with pytest.raises(ValueError, match=r"attention_mask requires grad.*attention_mask\.detach\(\)"):
        module(x, y, weights)
    with pytest.raises(ValueError, match="attention_mask requires grad"):
        module.gate(x, y, weights)
    with torch.no_grad():  # no gradient is asked for: nothing to refuse
        torch.testing.assert_close(module(x, y, weights), module(x, y, mask))
    module(x, y, weights.detach())


def test_torch_func_still_differentiates_the_mask():
    module, x, y, mask = module_and_inputs("torch")
    params = [p.detach().double() for p in module.parameters()]
    weights = mask.double()

    def loss(m):
        return torch.func.functional_call(module.double(), dict(zip(
            [n for n, _ in module.named_parameters()], params)), (x.double(), y.double(), m)).sum()

    got = torch.func.grad(loss)(weights)
    ref = weights.clone().requires_grad_()
    aif_reference(x.double(), y.double(), ref, *params).sum().backward()
    torch.testing.assert_close(got, ref.grad)
    assert got.abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad,shown", [
    (-10000.0, "-10000"),  # a Hugging Face additive mask: 0 for tokens, -10000 for padding
    (float("-inf"), "-inf"),
    (2.0, "2.0"),
    (float("nan"), "nan"),
])
def test_mask_values_outside_0_1_are_refused(backend, bad, shown):
    module, x, y, mask = module_and_inputs(backend)
    additive = torch.where(mask == 1, 0.0, bad)
    with pytest.raises(ValueError, match=rf"values in \[0, 1\].*found {shown}.*\(additive_mask == 0\)\.long\(\)"):
        module(x, y, additive)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        module.gate(x, y, additive)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.uint8])
def test_integer_mask_values_outside_0_1_are_refused(backend, dtype):
    module, x, y, mask = module_and_inputs(backend)
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*found 2"):
        module(x, y, (mask * 2).to(dtype))
    if dtype.is_signed:
        with pytest.raises(ValueError, match=r"values in \[0, 1\].*found -1"):
            module(x, y, (mask - 1).to(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fractional_mask_weights_are_accepted(backend):
    module, x, y, mask = module_and_inputs(backend)
    weights = mask * torch.rand(mask.shape)
    expected = aif_reference(x.double(), y.double(), weights.double(), *(p.double() for p in module.parameters()))
    torch.testing.assert_close(module(x, y, weights).double(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.uint16, torch.uint32, torch.uint64, torch.int16, torch.bool])
def test_every_integer_mask_dtype_gives_the_int64_result(backend, dtype):
    module, x, y, mask = module_and_inputs(backend)
    torch.testing.assert_close(module(x, y, mask.to(dtype)), module(x, y, mask), rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.complex64])
def test_float8_and_complex_masks_are_refused(backend, dtype):
    module, x, y, mask = module_and_inputs(backend)
    with pytest.raises(TypeError, match=rf"attention_mask must be bool, integer or float16.*got {dtype}"):
        module(x, y, mask.float().to(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gate_is_finite_in_fp16_where_the_op_is(backend):
    """X + Y overflows fp16 (40000 + 30000 > 65504); the op adds in fp32, and so must gate()."""
    module, x, y, mask = module_and_inputs(backend, dtype=torch.float16)
    x[0, 0], y[0, 0] = 40000.0, 30000.0
    assert torch.isfinite(module(x, y, mask)).all()
    gate = module.gate(x, y, mask)
    assert gate.dtype == torch.float32 and torch.isfinite(gate).all()
    params = [p.double() for p in module.parameters()]
    ref = aif_gate(x.double(), y.double(), mask, *params)
    torch.testing.assert_close(gate.double(), ref, rtol=1e-5, atol=1e-5)


def test_gate_statistics_put_no_non_finite_token_in_a_bin():
    module, x, y, mask = module_and_inputs("torch", B=2, T=4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    x[0, 1] = float("nan")  # a real token: through the global mean, every gate of sequence 0 is NaN
    stats = gate_statistics(module, x, y, mask)
    assert torch.isnan(stats["gate_mean"][0]) and torch.isfinite(stats["gate_mean"][1])
    assert stats["gate_hist"].shape == (2, GATE_HIST_BINS)
    assert stats["gate_hist"][0].sum() == 0 and stats["gate_token_count"][0] == 3  # counted, never binned
    assert stats["gate_hist"][1].sum() == 4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the device-sync rule of the mask check")
def test_cuda_mask_values_are_checked_only_when_asked(monkeypatch):
    torch.manual_seed(0)
    module = AIF(64, 4, backend="triton").cuda()
    x, y = (torch.randn(2, 8, 64, device="cuda") for _ in range(2))
    mask = random_mask(2, 8).cuda()
    additive = torch.where(mask == 1, 0.0, -10000.0)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        module(x, y, additive)  # the tests' default: DLFA_CHECK_INPUTS=1
    monkeypatch.delenv("DLFA_CHECK_INPUTS")
    with torch.no_grad():
        module(x, y, mask)  # warm-up (compiles) outside the capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # a host sync inside the op would fail the capture
            z = module(x, y, mask)
        graph.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(z, module(x, y, mask))
