"""The op's ``torch`` backend: the AIF math in plain PyTorch, with an explicit backward.

Everything runs in the accumulation dtype (float32, float64 for float64 inputs),
so W = X + Y cannot overflow in float16 and the GEMMs accumulate in float32. The
forward keeps the gate M (B, T, E) and the hidden activation h (B, T, H) for the
backward, which then runs the same four GEMMs as autograd of the reference and no
recomputation of the forward's. The global branch, O(B·E) work, is shared with the
triton backend. Parameters are passed as an 8-tuple in the order
(local_down w, b, local_up w, b, global_down w, b, global_up w, b).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .reference import aif_reference


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for fp16/bf16/fp32 inputs, float64 for float64 (so gradcheck sees exact math)."""
    return torch.promote_types(dtype, torch.float32)


def mask_and_inverse_count(mask: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """mask: (B, T) any numeric dtype -> contiguous mask in ``dtype`` and 1 / max(Σ_t mask, 1): (B,)."""
    m = mask.to(dtype).contiguous()
    return m, 1.0 / m.sum(dim=1).clamp_min(1.0)


def global_forward(g: Tensor, wd: Tensor, bd: Tensor, wu: Tensor, bu: Tensor) -> Tensor:
    """G = up(relu(down(g))) in g's dtype (fp32 or fp64). g: (B, E) -> (B, E)."""
    hg = F.relu(F.linear(g, wd.to(g.dtype), bd.to(g.dtype)))
    return F.linear(hg, wu.to(g.dtype), bu.to(g.dtype))


def gate_bias(g: Tensor, params) -> Tensor:
    """gb = G + local_up bias: (B, E) in g's dtype, contiguous; what the local gate adds per sequence."""
    _, _, _, blu, wgd, bgd, wgu, bgu = params
    return (global_forward(g, wgd, bgd, wgu, bgu) + blu.to(g.dtype)).contiguous()


def global_backward(dG: Tensor, g: Tensor, wd: Tensor, bd: Tensor, wu: Tensor):
    """Backward of :func:`global_forward`. dG, g: (B, E) fp32 or fp64.

    Returns dg (B, E) and grads (dwd, dbd, dwu, dbu), all in g's dtype.
    """
    wd, wu = wd.to(g.dtype), wu.to(g.dtype)
    hg_pre = F.linear(g, wd, bd.to(g.dtype))
    hg = F.relu(hg_pre)
    dhg = torch.where(hg_pre > 0, dG @ wu, torch.zeros_like(hg_pre))
    return dhg @ wd, (dhg.t() @ g, dhg.sum(0), dG.t() @ hg, dG.sum(0))


def _masked_mean_(w: Tensor, mask: Optional[Tensor]) -> Tensor:
    """g = Σ_t mask·w / max(Σ_t mask, 1): (B, E) from w: (B, T, E), contiguous, which it overwrites.

    Padded positions are zeroed first, so a NaN or Inf there stays out of the mean.
    """
    B, T, _ = w.shape
    if mask is None:
        return w.sum(1) / max(T, 1)
    m, inv = mask_and_inverse_count(mask, w.dtype)
    w.masked_fill_(m.unsqueeze(-1) == 0, 0.0)
    return torch.bmm(m.unsqueeze(1), w).squeeze(1) * inv.unsqueeze(1)


# Fresh (B, T, E) buffers cost page faults on a CPU: both passes write into as few as they can.


def aif_forward_torch(x: Tensor, y: Tensor, mask: Optional[Tensor], params) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """x, y: (B, T, E); mask: (B, T) or None. Returns z: (B, T, E) contiguous in x's dtype and,
    in the accumulation dtype, g: (B, E), h: (B, T, H) = relu(local_down(W)) and the gate M: (B, T, E)."""
    acc = accumulation_dtype(x.dtype)
    wld, bld, wlu = (p.to(acc) for p in params[:3])
    B, T, E = x.shape
    H = wld.shape[0]
    xa, ya = x.to(acc), y.to(acc)
    w = torch.add(xa, ya, out=x.new_empty((B, T, E), dtype=acc))  # contiguous: the GEMM wants (B·T, E) rows
    h = torch.addmm(bld, w.view(B * T, E), wld.t()).relu_()
    g = _masked_mean_(w, mask)
    s = torch.mm(h, wlu.t()).view(B, T, E).add_(gate_bias(g, params).unsqueeze(1))
    gate = torch.sigmoid(s, out=s)
    z = torch.lerp(ya, xa, gate)
    return z.to(x.dtype).contiguous(), g, h.view(B, T, H), gate


def aif_backward_torch(
    dz: Tensor, x: Tensor, y: Tensor, mask: Optional[Tensor], params, g: Tensor, h: Tensor, gate: Tensor,
) -> tuple[Tensor, ...]:
    """Gradients from what :func:`aif_forward_torch` returned (g, h, gate in the accumulation dtype).

    Returns (dx, dy, d local_down w, b, d local_up w, b, d global_down w, b, d global_up w, b).
    """
    acc = g.dtype
    wld, _, wlu, _, wgd, bgd, wgu, _ = (p.to(acc) for p in params)
    B, T, E = x.shape
    H = wld.shape[0]
    xa, ya, dza = x.to(acc), y.to(acc), dz.to(acc)
    buf = torch.sub(xa, ya, out=x.new_empty((B, T, E), dtype=acc)).mul_(dza)  # dM = dZ ⊙ (X − Y)
    ds = torch.ops.aten.sigmoid_backward.grad_input(buf, gate, grad_input=buf)  # dS = dM ⊙ M ⊙ (1 − M)
    dG = ds.sum(1)
    dg, global_grads = global_backward(dG, g, wgd, bgd, wgu)
    ds2, h2 = ds.view(B * T, E), h.reshape(B * T, H)
    dh = torch.ops.aten.threshold_backward(torch.mm(ds2, wlu), h2, 0)  # relu' read from h = relu(h_pre)
    dwlu = torch.mm(ds2.t(), h2)
    w = torch.add(xa, ya, out=buf)  # dS is spent: W = X + Y takes its buffer
    dwld = torch.mm(dh.t(), w.view(B * T, E))
    dw = torch.mm(dh, wld).view(B, T, E)
    if mask is None:
        dw.add_((dg / max(T, 1)).unsqueeze(1))
    else:
        m, inv = mask_and_inverse_count(mask, acc)
        dw.addcmul_(m.unsqueeze(-1), (dg * inv.unsqueeze(1)).unsqueeze(1))
    dx = torch.addcmul(dw, dza, gate)
    dy = dw.add_(dza).addcmul_(dza, gate, value=-1)  # dZ ⊙ (1 − M) + dW
    grads = (dwld, dh.sum(0), dwlu, dG.sum(0)) + global_grads
    dx, dy = dx.to(x.dtype).contiguous(), dy.to(y.dtype).contiguous()  # strided dZ may lend its layout
    return (dx, dy) + tuple(gr.to(p.dtype) for gr, p in zip(grads, params))


def aif_differentiable(x: Tensor, y: Tensor, mask: Optional[Tensor], params) -> Tensor:
    """z: (B, T, E) in x's dtype from the reference math in the accumulation dtype, built from
    differentiable torch ops: what runs under torch.func transforms, forward-mode AD and double backward."""
    acc = accumulation_dtype(x.dtype)
    return aif_reference(x.to(acc), y.to(acc), mask, *(p.to(acc) for p in params)).to(x.dtype)
