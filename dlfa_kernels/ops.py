"""The AIF op: ``torch.library`` registration, fake shapes, autograd, and the functional ``aif``.

Two ops, ``dlfa::aif_forward`` -> (z, g, h, gate) and ``dlfa::aif_backward`` -> grads,
each running the backend named by its last argument ("triton" or "torch"). The
mask is optional (None: plain mean over T). Both backends save X, Y, the mask, the
parameters and g (B×E) for backward; the torch backend also keeps h (B×T×H) and the
gate (B×T×E). The triton backend keeps h (B×T×H, in the input dtype) and, in the
gate's place, the global branch's gb = G + local_up.bias and hidden hg: (B, E + H);
its kernels recompute the gate.

Gradients are the exact derivative of the forward. The ops carry no forward-mode
or double-backward formula, so :func:`aif` computes with differentiable torch ops
(:func:`~dlfa_kernels.eager.aif_differentiable`) under ``torch.func`` transforms
and forward-mode AD, and its backward does the same when asked for a graph
(``create_graph=True``).
"""
import contextlib
import functools
from typing import Optional

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from .backend import check_backend_choice, interpreting, resolve_backend, triton_available
from .eager import (
    accumulation_dtype, aif_backward_torch, aif_differentiable, aif_forward_torch,
)
from .validation import check_inputs, check_mask_for_fused_op, check_param_dtypes

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
    z, (g, h, glob) = _kernels.aif_forward(x, y, mask, params)
    return z, g, h, glob


def _backward_triton(dz, x, y, mask, params, g, h, glob):
    return _kernels.aif_backward(dz, x, y, mask, params, (g, h, glob))


@_define("dlfa::aif_forward")
def aif_forward(
    x: Tensor, y: Tensor, mask: Optional[Tensor],
    local_down_weight: Tensor, local_down_bias: Tensor, local_up_weight: Tensor, local_up_bias: Tensor,
    global_down_weight: Tensor, global_down_bias: Tensor, global_up_weight: Tensor, global_up_bias: Tensor,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """z: (B, T, E) in x's dtype; g: (B, E) the masked mean of X + Y (fp32; fp64 for fp64 x);
    h: (B, T, H) and gate: (B, T, E) in g's dtype from the torch backend; from triton h: (B, T, H)
    in x's dtype and, in the gate's place, (B, E + H) fp32: gb = G + local_up.bias, then hg."""
    params = (local_down_weight, local_down_bias, local_up_weight, local_up_bias,
              global_down_weight, global_down_bias, global_up_weight, global_up_bias)
    if backend == "triton":
        return _forward_triton(x, y, mask, params)
    return aif_forward_torch(x, y, mask, params)


@aif_forward.register_fake
def _(x, y, mask, local_down_weight, *rest):
    backend = rest[-1]
    (B, T, E), H = x.shape, local_down_weight.shape[0]
    acc = accumulation_dtype(x.dtype)
    if backend == "torch":
        kept = (x.new_empty((B, T, H), dtype=acc), x.new_empty((B, T, E), dtype=acc))
    else:
        kept = (x.new_empty((B, T, H)), x.new_empty((B, E + H), dtype=acc))
    return (x.new_empty(x.shape), x.new_empty((B, E), dtype=acc), *kept)


@_define("dlfa::aif_backward")
def aif_backward(
    dz: Tensor, x: Tensor, y: Tensor, mask: Optional[Tensor],
    local_down_weight: Tensor, local_down_bias: Tensor, local_up_weight: Tensor, local_up_bias: Tensor,
    global_down_weight: Tensor, global_down_bias: Tensor, global_up_weight: Tensor, global_up_bias: Tensor,
    g: Tensor, h: Tensor, gate: Tensor, backend: str,
) -> list[Tensor]:
    """[dx, dy, then the gradient of each parameter in the order of the arguments].

    g, h, gate: what :func:`aif_forward` returned with the same backend."""
    params = (local_down_weight, local_down_bias, local_up_weight, local_up_bias,
              global_down_weight, global_down_bias, global_up_weight, global_up_bias)
    if backend == "triton":
        return _backward_triton(dz, x, y, mask, params, g, h, gate)
    return list(aif_backward_torch(dz, x, y, mask, params, g, h, gate))


@aif_backward.register_fake
def _(dz, x, y, mask, *rest):
    params = rest[:8]
    return [x.new_empty(x.shape), y.new_empty(y.shape)] + [torch.empty_like(p) for p in params]


def _setup_context(ctx, inputs, output):
    x, y, mask, *params, backend = inputs
    ctx.save_for_backward(x, y, mask, *params, *output[1:])
    ctx.mark_non_differentiable(*output[1:])  # g, h, gate: saved for backward, not results
    ctx.set_materialize_grads(False)  # so no zero (B, T, E) gradient is built for them
    ctx.backend = backend


def _backward(ctx, dz, *_unused):
    x, y, mask, *params, g, h, gate = ctx.saved_tensors
    if dz is None:  # z's gradient undefined (gradients are not materialized as zeros)
        return (None,) * (len(params) + 4)
    if torch.is_grad_enabled():  # create_graph=True: the gradients must be differentiable themselves
        return _differentiable_backward(dz, x, y, mask, params)
    dx, dy, *param_grads = aif_backward(dz, x, y, mask, *params, g, h, gate, ctx.backend)
    return (dx, dy, None, *param_grads, None)


def _differentiable_backward(dz, x, y, mask, params):
    """The backward as a graph: autograd of :func:`aif_differentiable` recomputed from the saved inputs."""
    inputs = (x, y, *params)
    wanted = [i for i, t in enumerate(inputs) if t.requires_grad]
    grads = [None] * len(inputs)
    if wanted:
        with torch.enable_grad():
            z = aif_differentiable(x, y, mask, params)
            found = torch.autograd.grad(z, [inputs[i] for i in wanted], dz, create_graph=True, allow_unused=True)
        for i, gr in zip(wanted, found):
            grads[i] = torch.zeros_like(inputs[i]) if gr is None else gr
    return (grads[0], grads[1], None, *grads[2:], None)


aif_forward.register_autograd(_backward, setup_context=_setup_context)


def _transform_active() -> bool:
    """torch.func transforms (grad, jvp, vmap, jacrev, ...) or a forward-mode AD level."""
    return torch._C._are_functorch_transforms_active() or fwAD._current_level >= 0


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    if device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


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
    Returns z: (B, T, E) in x's dtype. Under ``torch.autocast`` it does as ``nn.Linear``:
    float16/bfloat16/float32 tensors compute in the autocast dtype, float64 stays float64.
    Under ``torch.func`` transforms, forward-mode AD and double backward it computes with
    differentiable torch ops (the reference math, float32 accumulation).
    """
    check_backend_choice(backend)
    params = (local_down_weight, local_down_bias, local_up_weight, local_up_bias,
              global_down_weight, global_down_bias, global_up_weight, global_up_bias)
    check_inputs(x, y, attention_mask, params)
    device_type = x.device.type
    autocast_dtype = _autocast_dtype(device_type)
    if autocast_dtype is not None:  # autocast lowers every float tensor but float64, as for nn.Linear
        x, y = (t if t.dtype == torch.float64 else t.to(autocast_dtype) for t in (x, y))
        params = tuple(p if p.dtype == torch.float64 else p.to(autocast_dtype) for p in params)
    check_param_dtypes(x, params)
    backend = resolve_backend(backend, x.device, x.dtype)
    with torch.autocast(device_type, enabled=False) if autocast_dtype is not None else contextlib.nullcontext():
        if _transform_active():
            return aif_differentiable(x, y, attention_mask, params)
        check_mask_for_fused_op(attention_mask)
        return aif_forward(x, y, attention_mask, *params, backend)[0]
