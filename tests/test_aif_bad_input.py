"""Bad input raises a clear ValueError/TypeError before any kernel runs."""
import pytest
import torch

from dlfa_kernels import AIF, aif


@pytest.fixture
def module():
    return AIF(16, 4, backend="torch")


def good():
    return torch.randn(2, 5, 16), torch.randn(2, 5, 16), torch.ones(2, 5)


@pytest.mark.parametrize("hidden_size,reduction,error,match", [
    (16, 3, ValueError, "divisible by reduction"),
    (16, 0, ValueError, "reduction must be >= 1"),
    (16, -2, ValueError, "reduction must be >= 1"),
    (0, 1, ValueError, "hidden_size must be >= 1"),
    (16.0, 4, TypeError, "hidden_size must be an int"),
])
def test_bad_module_sizes(hidden_size, reduction, error, match):
    with pytest.raises(error, match=match):
        AIF(hidden_size, reduction)


def test_bad_backend_name():
    with pytest.raises(ValueError, match="backend must be one of"):
        AIF(16, 4, backend="cuda")


def test_bad_backend_environment_variable(module, monkeypatch):
    monkeypatch.setattr(module, "backend", "auto")
    monkeypatch.setenv("DLFA_BACKEND", "fast")
    with pytest.raises(ValueError, match="DLFA_BACKEND must be one of"):
        module(*good())


def test_environment_variable_overrides_auto(module, monkeypatch):
    from dlfa_kernels import resolve_backend
    monkeypatch.setenv("DLFA_BACKEND", "torch")
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    assert resolve_backend("triton", torch.device("cpu")) == "triton"  # explicit choice wins


def test_float64_picks_torch_under_auto_and_is_refused_by_triton():
    from dlfa_kernels import resolve_backend
    assert resolve_backend("auto", torch.device("cuda"), torch.float64) == "torch"
    x, y, mask = good()
    with pytest.raises(TypeError, match="backend='triton' supports float16, bfloat16 and float32"):
        AIF(16, 4, backend="triton").double()(x.double(), y.double(), mask)


def test_triton_backend_on_cpu_without_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        AIF(16, 4, backend="triton")(*good())


@pytest.mark.parametrize("case,error,match", [
    ("rank", ValueError, r"x must have shape \(B, T, E\), got shape \(5, 16\)"),
    ("shapes differ", ValueError, r"x and y must have the same shape, got x \(2, 5, 16\) and y \(2, 4, 16\)"),
    ("hidden size", ValueError, r"last dimension 8 .* hidden_size=16"),
    ("mask shape", ValueError, r"attention_mask must have shape \(B, T\) = \(2, 5\), got \(2, 4\)"),
    ("mask dtype", TypeError, "attention_mask must be bool, integer or float16.*, got torch.complex64"),
    ("mask type", TypeError, "attention_mask must be a torch.Tensor or None, got list"),
    ("dtypes differ", TypeError, "x and y must have the same dtype, got x torch.float32 and y torch.float64"),
    ("integer x", TypeError, "x must be float16, bfloat16, float32 or float64, got torch.int64"),
    ("not a tensor", TypeError, "x must be a torch.Tensor, got ndarray"),
    ("devices differ", ValueError, "all tensors must be on one device"),
    ("param dtype", TypeError, "local_down.weight is torch.float32 but the inputs are torch.float64"),
])
def test_bad_inputs(module, case, error, match):
    x, y, mask = good()
    if case == "rank":
        x, y = x[0], y[0]
    elif case == "shapes differ":
        y = y[:, :4]
    elif case == "hidden size":
        x, y = x[..., :8], y[..., :8]
    elif case == "mask shape":
        mask = mask[:, :4]
    elif case == "mask dtype":
        mask = mask.to(torch.complex64)
    elif case == "mask type":
        mask = [[1] * 5] * 2
    elif case == "dtypes differ":
        y = y.double()
    elif case == "integer x":
        x, y = x.long(), y.long()
    elif case == "not a tensor":
        x = x.numpy()
    elif case == "devices differ":
        mask = mask.to("meta")
    elif case == "param dtype":
        x, y = x.double(), y.double()
    with pytest.raises(error, match=match):
        module(x, y, mask)


def test_functional_rejects_mismatched_parameter_shapes():
    m = AIF(16, 4)
    params = [p for p in m.parameters()]
    params[2] = torch.randn(16, 8)  # local_up.weight for H=8 while local_down has H=4
    with pytest.raises(ValueError, match=r"local_up.weight has shape \(16, 8\), expected \(16, 4\)"):
        aif(*good(), *params, backend="torch")


def test_bad_backend_environment_variable_is_reported_at_construction(monkeypatch):
    monkeypatch.setenv("DLFA_BACKEND", "fast")
    with pytest.raises(ValueError, match=r"DLFA_BACKEND must be one of \('auto', 'triton', 'torch'\), got 'fast'"):
        AIF(16, 4)
    AIF(16, 4, backend="torch")  # an explicit backend does not read the variable


def test_bad_backend_environment_variable_is_reported_by_aif_before_input_checks(monkeypatch):
    params = list(AIF(16, 4).parameters())
    monkeypatch.setenv("DLFA_BACKEND", "fast")
    with pytest.raises(ValueError, match="DLFA_BACKEND must be one of"):
        aif("not a tensor", None, None, *params)


def test_bfloat16_refused_by_triton_under_the_interpreter(monkeypatch):
    from dlfa_kernels import resolve_backend
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, y, mask = good()
    module = AIF(16, 4, backend="triton").to(torch.bfloat16)
    with pytest.raises(TypeError, match=r"cannot run bfloat16 under the Triton interpreter \(TRITON_INTERPRET=1\)"):
        module(x.bfloat16(), y.bfloat16(), mask)
    assert resolve_backend("auto", torch.device("cuda"), torch.bfloat16) == "torch"
    assert resolve_backend("auto", torch.device("cpu"), torch.bfloat16) == "torch"


@pytest.mark.parametrize("case,error,match", [
    ("hidden size", ValueError, r"last dimension 8 .* hidden_size=16"),
    ("shapes differ", ValueError, r"x and y must have the same shape"),
    ("mask shape", ValueError, r"attention_mask must have shape \(B, T\) = \(2, 5\), got \(2, 4\)"),
    ("param dtype", TypeError, "local_down.weight is torch.float32 but the inputs are torch.float64"),
    ("not a tensor", TypeError, "y must be a torch.Tensor, got list"),
])
def test_gate_runs_the_checks_of_forward(module, case, error, match):
    x, y, mask = good()
    if case == "hidden size":
        x, y = x[..., :8], y[..., :8]
    elif case == "shapes differ":
        y = y[:, :4]
    elif case == "mask shape":
        mask = mask[:, :4]
    elif case == "param dtype":
        x, y = x.double(), y.double()
    elif case == "not a tensor":
        y = y.tolist()
    for method in (module.forward, module.gate):
        with pytest.raises(error, match=match):
            method(x, y, mask)
