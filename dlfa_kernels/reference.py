"""The AIF fusion written as plain PyTorch math: the specification.

This is the truth the tests compare against (run it in float64), and the
baseline that ``torch.compile`` is timed on. Autograd differentiates it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_mean(w: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``w: (B, T, E)`` over real tokens -> ``(B, E)``.

    ``g[b] = Σ_t mask[b,t]·w[b,t] / max(Σ_t mask[b,t], 1)``; an all-padding row
    gives 0. Padded positions are selected away, so a NaN there stays out.
    """
    if mask is None:
        return w.mean(dim=1) if w.shape[1] > 0 else w.sum(dim=1)
    m = mask.to(w.dtype).unsqueeze(-1)
    count = m.sum(dim=1).clamp_min(1)
    return torch.where(m != 0, w * m, torch.zeros_like(w)).sum(dim=1) / count


def aif_gate(
    x: Tensor,
    y: Tensor,
    attention_mask: Tensor | None,
    local_down_weight: Tensor,
    local_down_bias: Tensor,
    local_up_weight: Tensor,
    local_up_bias: Tensor,
    global_down_weight: Tensor,
    global_down_bias: Tensor,
    global_up_weight: Tensor,
    global_up_bias: Tensor,
) -> Tensor:
    """The gate M = sigmoid(L + G): (B, T, E). Arguments as in :func:`aif_reference`."""
    w = x + y
    g = masked_mean(w, attention_mask)
    big_g = F.linear(F.relu(F.linear(g, global_down_weight, global_down_bias)), global_up_weight, global_up_bias)
    local = F.linear(F.relu(F.linear(w, local_down_weight, local_down_bias)), local_up_weight, local_up_bias)
    return torch.sigmoid(local + big_g.unsqueeze(1))


def aif_reference(x: Tensor, y: Tensor, attention_mask: Tensor | None, *params: Tensor) -> Tensor:
    """Z = M ⊙ X + (1 − M) ⊙ Y with M = sigmoid(L + G).

    x, y: (B, T, E); attention_mask: (B, T) or None; params: local_down weight (H, E)
    and bias (H,), local_up (E, H), (E,), then global_down and global_up likewise.
    Returns z: (B, T, E) in x's dtype.
    """
    gate = aif_gate(x, y, attention_mask, *params)
    return gate * x + (1 - gate) * y
