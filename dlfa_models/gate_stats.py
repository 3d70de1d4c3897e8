"""Gate statistics of one evaluation language, from the model's per-sequence gate outputs.

The gate M (B, T, E) says how much of the last layer each token takes (1 = all of it).
Prediction collects, per sequence: ``gate_mean`` (mean of M over its real tokens and E),
``gate_tokens`` (its real tokens) and, when the model provides them, ``gate_std`` (std
across its real tokens of M's mean over E) and ``gate_hist`` (K-bin token counts over [0, 1]).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

HISTOGRAM_BINS = 10


def aggregate_gates(fields: dict) -> Optional[dict]:
    """Language-level statistics from per-sequence arrays (each (N,) or (N, K)); None without a gate.

    Returns ``mean`` (over all real tokens and E), ``std`` with ``std_over`` ("tokens" when
    the model gives per-sequence ``gate_std``, else "sequences": the spread of sequence means),
    ``histogram`` (``edges``, ``counts`` of tokens, or of sequence means) and ``sequences``.
    """
    if fields.get("gate_mean") is None:
        return None
    mean = np.asarray(fields["gate_mean"], dtype=np.float64).reshape(-1)
    tokens = np.asarray(fields["gate_tokens"], dtype=np.float64).reshape(-1)
    keep = np.isfinite(mean) & (tokens > 0)  # an all-padding sequence has no gate
    mean, tokens = mean[keep], tokens[keep]
    if not keep.any():
        return None
    total = tokens.sum()
    overall = float((tokens * mean).sum() / total)
    if fields.get("gate_std") is not None:
        within = np.asarray(fields["gate_std"], dtype=np.float64).reshape(-1)[keep]
        # law of total variance over the tokens of all sequences
        std, over = float(np.sqrt((tokens * (within ** 2 + (mean - overall) ** 2)).sum() / total)), "tokens"
    else:
        std, over = float(mean.std()), "sequences"
    if fields.get("gate_hist") is not None:
        counts = np.asarray(fields["gate_hist"], dtype=np.float64)[keep].sum(0)
    else:
        counts, _ = np.histogram(mean, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    edges = np.linspace(0.0, 1.0, len(counts) + 1)
    return {"mean": overall, "std": std, "std_over": over, "sequences": int(keep.sum()),
            "histogram": {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}}
