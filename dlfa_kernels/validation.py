"""Input checks of the AIF op, run before any kernel: clear errors, shapes in the message."""
from __future__ import annotations

import os

import torch
from torch import Tensor

PARAM_NAMES = (
    "local_down.weight", "local_down.bias", "local_up.weight", "local_up.bias",
    "global_down.weight", "global_down.bias", "global_up.weight", "global_up.bias",
)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Every dtype both backends read as numbers; float8 and complex are not among them.
MASK_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
               torch.uint16, torch.uint32, torch.uint64) + FLOAT_DTYPES
CHECK_ENV_VAR = "DLFA_CHECK_INPUTS"


def check_module_sizes(hidden_size: int, reduction: int) -> int:
    """Returns the bottleneck width H = hidden_size // reduction."""
    for name, v in (("hidden_size", hidden_size), ("reduction", reduction)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if hidden_size < 1:
        raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
    if reduction < 1:
        raise ValueError(f"reduction must be >= 1, got {reduction}")
    if hidden_size % reduction:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by reduction ({reduction})")
    return hidden_size // reduction


def check_inputs(x: Tensor, y: Tensor, attention_mask: Tensor | None, params: tuple[Tensor, ...]) -> None:
    """x, y: (B, T, E) of one float dtype; attention_mask: (B, T) bool/int/float or None;
    params: the eight weights and biases, shaped for E and one H, on x's device."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, T, E), got shape {tuple(x.shape)}")
    if y.shape != x.shape:
        raise ValueError(f"x and y must have the same shape, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if y.dtype != x.dtype:
        raise TypeError(f"x and y must have the same dtype, got x {x.dtype} and y {y.dtype}")
    B, T, E = x.shape
    H = params[0].shape[0] if params[0].dim() == 2 else -1
    expected = ((H, E), (H,), (E, H), (E,), (H, E), (H,), (E, H), (E,))
    for name, p, shape in zip(PARAM_NAMES, params, expected):
        if not isinstance(p, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(p).__name__}")
        if tuple(p.shape) != shape:
            raise ValueError(
                f"{name} has shape {tuple(p.shape)}, expected {shape} for inputs of shape {tuple(x.shape)} "
                f"(last dimension E={E}, bottleneck H={H})"
            )
    tensors = [("x", x), ("y", y)] + list(zip(PARAM_NAMES, params))
    if attention_mask is not None:
        if not isinstance(attention_mask, Tensor):
            raise TypeError(f"attention_mask must be a torch.Tensor or None, got {type(attention_mask).__name__}")
        if tuple(attention_mask.shape) != (B, T):
            raise ValueError(
                f"attention_mask must have shape (B, T) = {(B, T)}, got {tuple(attention_mask.shape)}"
            )
        if attention_mask.dtype not in MASK_DTYPES:
            raise TypeError("attention_mask must be bool, integer or float16/bfloat16/float32/float64, "
                            f"got {attention_mask.dtype}")
        tensors.append(("attention_mask", attention_mask))
    devices = {t.device for _, t in tensors}
    if len(devices) > 1:
        where = ", ".join(f"{n} on {t.device}" for n, t in tensors)
        raise ValueError(f"all tensors must be on one device, got {where}")


def check_param_dtypes(x: Tensor, params: tuple[Tensor, ...]) -> None:
    """Parameters must match the input dtype (use torch.autocast or module.to(dtype) otherwise)."""
    for name, p in zip(PARAM_NAMES, params):
        if p.dtype != x.dtype:
            raise TypeError(
                f"{name} is {p.dtype} but the inputs are {x.dtype}; "
                "cast the module with .to(dtype) or run under torch.autocast"
            )


def check_mask_for_fused_op(attention_mask: Tensor | None) -> None:
    """The op treats the mask as constant weights in [0, 1]: refuse a mask that requires grad, and
    values outside [0, 1] (a Hugging Face *additive* mask: 0 for tokens, −10000 for padding).

    The value check reads the mask, so it runs only where that costs no device sync: a mask on the
    CPU, or any mask when the environment variable ``DLFA_CHECK_INPUTS=1`` (tests set it; on CUDA it
    syncs, which CUDA-graph capture forbids). Not under ``torch.compile`` tracing or fake tensors.
    """
    if attention_mask is None:
        return
    if attention_mask.requires_grad and torch.is_grad_enabled():
        raise ValueError("attention_mask requires grad, but the AIF op gives it no gradient; "
                         "pass attention_mask.detach() (or compute under torch.func, which differentiates it)")
    if attention_mask.dtype == torch.bool or attention_mask.device.type == "meta" or _tracing(attention_mask):
        return
    if attention_mask.device.type != "cpu" and os.environ.get(CHECK_ENV_VAR, "0") != "1":
        return
    values = attention_mask.double()  # uint16/32/64 have no comparison kernels; B×T values are cheap to copy
    bad = ~((values >= 0) & (values <= 1))  # NaN is bad too
    if bool(bad.any()):
        value = attention_mask[bad][0].item()
        raise ValueError(
            f"attention_mask must hold values in [0, 1] (1 = token, 0 = padding), found {value}; "
            "an additive mask (0 for tokens, a large negative number for padding) converts with "
            "(additive_mask == 0).long()")


def _tracing(t: Tensor) -> bool:
    """True under torch.compile/export tracing, where reading a tensor's values is not possible."""
    if torch.compiler.is_compiling():
        return True
    from torch._subclasses.fake_tensor import is_fake
    return is_fake(t)
