"""The AIF op: ``torch.library`` registration, fake shapes, autograd, and the functional ``aif``.

Two ops, ``dlfa::aif_forward`` -> (z, g) and ``dlfa::aif_backward`` -> grads, each
running the backend named by its last argument ("triton" or "torch"). Forward
saves only X, Y, the mask, the parameters and g (B×E) for backward.
"""
import functools
from typing import Optional

import torch
from torch import Tensor

from .backend import interpreting, resolve_backend, triton_available
from .eager import (
    accumulation_dtype, aif_backward_torch, aif_forward_torch, gate_bias, global_backward, mask_and_inverse_count,
)
from .validation import check_inputs, check_param_dtypes

if triton_available():
    from . import aif_kernels as _kernels
else:  # pragma: no cover - exercised on machines without triton
    _kernels = None

# triton_op lets torch.compile see the kernels; the interpreter's kernels are not
# JIT functions it can trace, so they run behind an opaque custom_op instead.
if _kernels is not None and hasattr(torch.library, "triton_op") and not interpreting():
    _define = functools.partial(torch.library.triton_op, mutates_args=())
else:
    _define = functools.partial(torch.library.custom_op, mutates_args=())


def _forward_triton(x, y, mask, params):
    return _kernels.aif_forward(x, y, mask, params)


def _backward_triton(dz, x, y, mask, params, g):
    return _kernels.aif_backward(dz, x, y, mask, params, g)


@_define("dlfa::aif_forward")
def aif_forward(
    x: Tensor, y: Tensor, mask: Tensor,
    local_down_weight: Tensor, local_down_bias: Tensor, local_up_weight: Tensor, local_up_bias: Tensor,
    global_down_weight: Tensor, global_down_bias: Tensor, global_up_weight: Tensor, global_up_bias: Tensor,
    backend: str,
) -> tuple[Tensor, Tensor]:
    """z: (B, T, E) in x's dtype, and g: (B, E) the masked mean of X + Y (fp32; fp64 for fp64 x)."""
    params = (local_down_weight, local_down_bias, local_up_weight, local_up_bias,
              global_down_weight, global_down_bias, global_up_weight, global_up_bias)
    if backend == "triton":
        return _forward_triton(x, y, mask, params)
    return aif_forward_torch(x, y, mask, params)


@aif_forward.register_fake
def _(x, y, mask, *params_and_backend):
    return x.new_empty(x.shape), x.new_empty((x.shape[0], x.shape[2]), dtype=accumulation_dtype(x.dtype))


@_define("dlfa::aif_backward")
def aif_backward(
    dz: Tensor, x: Tensor, y: Tensor, mask: Tensor,
    local_down_weight: Tensor, local_down_bias: Tensor, local_up_weight: Tensor, local_up_bias: Tensor,
    global_down_weight: Tensor, global_down_bias: Tensor, global_up_weight: Tensor, global_up_bias: Tensor,
    g: Tensor, backend: str,
) -> list[Tensor]:
    """[dx, dy, then the gradient of each parameter in the order of the arguments]."""
    params = (local_down_weight, local_down_bias, local_up_weight, local_up_bias,
              global_down_weight, global_down_bias, global_up_weight, global_up_bias)
    if backend == "triton":
        return _backward_triton(dz, x, y, mask, params, g)
    return list(aif_backward_torch(dz, x, y, mask, params, g))


@aif_backward.register_fake
def _(dz, x, y, mask, *rest):
    params = rest[:8]
    return [x.new_empty(x.shape), y.new_empty(y.shape)] + [torch.empty_like(p) for p in params]


def _setup_context(ctx, inputs, output):
    x, y, mask, *params, backend = inputs
    ctx.save_for_backward(x, y, mask, *params, output[1])
    ctx.backend = backend


def _backward(ctx, dz, _dg):
    x, y, mask, *params, g = ctx.saved_tensors
    dx, dy, *param_grads = aif_backward(dz, x, y, mask, *params, g, ctx.backend)
    return (dx, dy, None, *param_grads, None)


aif_forward.register_autograd(_backward, setup_context=_setup_context)


def aif(
    x: Tensor,
    y: Tensor,
    attention_mask: Optional[Tensor],
    local_down_weight: Tensor, local_down_bias: Tensor, local_up_weight: Tensor, local_up_bias: Tensor,
    global_down_weight: Tensor, global_down_bias: Tensor, global_up_weight: Tensor, global_up_bias: Tensor,
    backend: str = "auto",
) -> Tensor:
    """Functional AIF fusion: ``Z = M ⊙ X + (1 − M) ⊙ Y``, ``M = σ(L(X+Y) + G(mean(X+Y)))``.

    x, y: (B, T, E); attention_mask: (B, T) (1 = token, 0 = padding) or None;
    *_down_weight: (H, E), *_down_bias: (H,), *_up_weight: (E, H), *_up_bias: (E,).
    Returns z: (B, T, E) in x's dtype (the autocast dtype under ``torch.autocast``).
    """
    params = (local_down_weight, local_down_bias, local_up_weight, local_up_bias,
              global_down_weight, global_down_bias, global_up_weight, global_up_bias)
    check_inputs(x, y, attention_mask, params)
    device_type = x.device.type
    autocast = device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type)
    if autocast:  # behave as nn.Linear does: compute in the autocast dtype
        dtype = torch.get_autocast_dtype(device_type)
        x, y = x.to(dtype), y.to(dtype)
        params = tuple(p.to(dtype) for p in params)
    check_param_dtypes(x, params)
    backend = resolve_backend(backend, x.device, x.dtype)
    if attention_mask is None:
        attention_mask = torch.ones(x.shape[:2], device=x.device, dtype=torch.float32)
    if autocast:
        with torch.autocast(device_type, enabled=False):
            return aif_forward(x, y, attention_mask, *params, backend)[0]
    return aif_forward(x, y, attention_mask, *params, backend)[0]
