"""Input checks of the AIF op, run before any kernel: clear errors, shapes in the message."""
from __future__ import annotations

import torch
from torch import Tensor

PARAM_NAMES = (
    "local_down.weight", "local_down.bias", "local_up.weight", "local_up.bias",
    "global_down.weight", "global_down.bias", "global_up.weight", "global_up.bias",
)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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
        if attention_mask.dtype.is_complex or not (
            attention_mask.dtype == torch.bool or attention_mask.dtype.is_floating_point
            or attention_mask.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
        ):
            raise TypeError(f"attention_mask must be bool, integer or float, got {attention_mask.dtype}")
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
