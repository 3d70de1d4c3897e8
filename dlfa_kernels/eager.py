"""The op's ``torch`` backend: the kernels' algorithm in plain PyTorch.

Forward and an explicit backward (the gradient formulas of DESIGN.md §1), with
fp32 accumulation like the kernels (fp64 for fp64 inputs). The global branch, O(B·E) work, is shared
with the triton backend. Parameters are passed as an 8-tuple in the order
(local_down w, b, local_up w, b, global_down w, b, global_up w, b).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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


def local_gate(w: Tensor, wd: Tensor, bd: Tensor, wu: Tensor, gb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Recompute the local branch. w: (B, T, E); gb: (B, E) = G + local_up bias, accumulation dtype.

    Returns h_pre (B, T, H), h (B, T, H) in w's dtype, gate M (B, T, E) in gb's dtype.
    """
    h_pre = F.linear(w, wd, bd)
    h = F.relu(h_pre)
    s = F.linear(h, wu).to(gb.dtype) + gb.unsqueeze(1)
    return h_pre, h, torch.sigmoid(s)


def aif_forward_torch(x: Tensor, y: Tensor, mask: Tensor, params) -> tuple[Tensor, Tensor]:
    """Returns z: (B, T, E) contiguous in x's dtype and g: (B, E) (saved for backward).

    g is in the accumulation dtype (fp32, or fp64 for fp64 inputs).
    """
    wld, bld, wlu = params[:3]
    acc = accumulation_dtype(x.dtype)
    m, inv = mask_and_inverse_count(mask, acc)
    w = x + y
    wf = w.to(acc)
    g = torch.where(m.unsqueeze(-1) != 0, wf * m.unsqueeze(-1), torch.zeros_like(wf)).sum(1) * inv.unsqueeze(1)
    gb = gate_bias(g, params)
    _, _, gate = local_gate(w, wld, bld, wlu, gb)
    yf = y.to(acc)
    z = yf + gate * (x.to(acc) - yf)
    return z.to(x.dtype).contiguous(), g


def aif_backward_torch(dz: Tensor, x: Tensor, y: Tensor, mask: Tensor, params, g: Tensor) -> tuple[Tensor, ...]:
    """Returns (dx, dy, d local_down w, b, d local_up w, b, d global_down w, b, d global_up w, b)."""
    wld, bld, wlu, _, wgd, bgd, wgu, _ = params
    acc = g.dtype
    m, inv = mask_and_inverse_count(mask, acc)
    gb = gate_bias(g, params)
    w = x + y
    h_pre, h, gate = local_gate(w, wld, bld, wlu, gb)
    dzf = dz.to(acc)
    ds = dzf * (x.to(acc) - y.to(acc)) * gate * (1 - gate)
    dG = ds.sum(1)
    dg, (dwgd, dbgd, dwgu, dbgu) = global_backward(dG, g, wgd, bgd, wgu)
    ds_d = ds.to(x.dtype)
    dh_pre = torch.where(h_pre > 0, ds_d @ wlu, torch.zeros_like(h_pre))
    dw = (dh_pre @ wld).to(acc) + (dg * inv.unsqueeze(1)).unsqueeze(1) * m.unsqueeze(-1)
    dx = (dzf * gate + dw).to(x.dtype).contiguous()
    dy = (dzf * (1 - gate) + dw).to(y.dtype).contiguous()
    E, H = wlu.shape
    dwlu = ds_d.reshape(-1, E).t().to(acc) @ h.reshape(-1, H).to(acc)
    dwld = dh_pre.reshape(-1, H).t().to(acc) @ w.reshape(-1, E).to(acc)
    dbld = dh_pre.reshape(-1, H).to(acc).sum(0)
    grads = (dwld, dbld, dwlu, dG.sum(0), dwgd, dbgd, dwgu, dbgu)
    return (dx, dy) + tuple(gr.to(p.dtype) for gr, p in zip(grads, params))
