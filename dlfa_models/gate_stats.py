"""Gate statistics: how much of the last layer each sequence (and, aggregated, each language) takes.

Per sequence, from the fused op's own inputs (no second encoder pass), with
``m[b, t] = mean_E M[b, t, :]`` the per-token mean gate (1 = all from the last layer):

- ``gate_mean`` (B,) float: mean of M over real tokens and E (NaN for an all-padding row);
- ``gate_token_sum`` (B,) float: Σ_t m[b, t] over real tokens;
- ``gate_token_sq_sum`` (B,) float: Σ_t m[b, t]² over real tokens;
- ``gate_token_count`` (B,) int: the number of real tokens;
- ``gate_hist`` (B, GATE_HIST_BINS) int: real tokens per bin of m on [0, 1] (equal
  bins; m = 1 falls in the last one). A token whose m is not finite is in no bin; it
  makes its sequence's ``gate_mean`` and sums NaN, which is how it is reported.

The sums let a caller pool many batches exactly: :func:`summarize_gate_stats`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from dlfa_kernels import AIF

GATE_HIST_BINS = 10
GATE_STAT_FIELDS = ("gate_mean", "gate_token_sum", "gate_token_sq_sum", "gate_token_count", "gate_hist")


@torch.no_grad()
def gate_statistics(aif: AIF, x: Tensor, y: Tensor, attention_mask: Optional[Tensor]) -> dict[str, Tensor]:
    """x, y: (B, T, E) the AIF's inputs; attention_mask: (B, T) or None. Returns the fields above."""
    dtype = aif.local_down.weight.dtype
    per_token = aif.gate(x.to(dtype), y.to(dtype), attention_mask).float().mean(-1)  # (B, T)
    real = torch.ones_like(per_token, dtype=torch.bool) if attention_mask is None else attention_mask != 0
    count = real.sum(1)
    token_sum = torch.where(real, per_token, 0.0).sum(1)
    sq_sum = torch.where(real, per_token.square(), 0.0).sum(1)
    binned = real & per_token.isfinite()
    bins = (torch.nan_to_num(per_token) * GATE_HIST_BINS).long().clamp(0, GATE_HIST_BINS - 1)
    hist = (torch.nn.functional.one_hot(bins, GATE_HIST_BINS) * binned.unsqueeze(-1)).sum(1)
    return {
        "gate_mean": token_sum / count,  # 0 / 0 = NaN for an all-padding row
        "gate_token_sum": token_sum,
        "gate_token_sq_sum": sq_sum,
        "gate_token_count": count,
        "gate_hist": hist,
    }


def summarize_gate_stats(gate_token_sum, gate_token_sq_sum, gate_token_count, gate_hist) -> dict:
    """Pool per-sequence statistics (arrays of any number of sequences) into one summary.

    Returns ``gate_mean`` and ``gate_std`` (population std of the per-token mean gate
    across all real tokens), ``gate_tokens`` and ``gate_sequences`` (sequences with at
    least one real token; all-padding rows are skipped) and ``gate_hist`` (fraction of
    tokens per bin). With no real token at all, mean, std and the fractions are NaN.
    """
    count = np.asarray(gate_token_count, dtype=np.int64)
    keep = count > 0
    n = int(count[keep].sum())
    hist = np.asarray(gate_hist, dtype=np.int64)[keep].sum(0) if keep.any() else np.zeros(GATE_HIST_BINS, np.int64)
    if n == 0:
        mean = std = float("nan")
        fractions = [float("nan")] * GATE_HIST_BINS
    else:
        total = float(np.asarray(gate_token_sum, dtype=np.float64)[keep].sum())
        total_sq = float(np.asarray(gate_token_sq_sum, dtype=np.float64)[keep].sum())
        mean = total / n
        std = max(total_sq / n - mean * mean, 0.0) ** 0.5
        fractions = (hist / n).tolist()
    return {"gate_mean": mean, "gate_std": std, "gate_tokens": n, "gate_sequences": int(keep.sum()),
            "gate_hist": fractions}
