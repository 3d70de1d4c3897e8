"""Losses on the cosine similarity of sentence pairs, as sentence-transformers defines them.

Written here rather than called from sentence-transformers: that package is only a test dependency
(``dlfa[models]`` trains without it). tests/test_biencoder.py checks both equal its
``CosineSimilarityLoss`` and ``CoSENTLoss`` on the same embeddings and labels.
"""
from __future__ import annotations

import torch
from torch import Tensor

SIMILARITY_LOSSES = ("cosine", "cosent")
COSENT_SCALE = 20.0  # sentence-transformers' default inverse temperature


def cosine_similarity_loss(cos: Tensor, labels: Tensor) -> Tensor:
    """cos, labels: (B,). Mean squared error between the cosine and the gold similarity."""
    return torch.nn.functional.mse_loss(cos.float(), labels.float())


def cosent_loss(cos: Tensor, labels: Tensor, scale: float = COSENT_SCALE) -> Tensor:
    """cos, labels: (B,). CoSENT: log(1 + Σ exp(scale·(cos_j − cos_i))) over the pairs of the batch with
    label_i > label_j, so only the order of the cosines counts, not their values."""
    s = cos.float() * scale
    ranked_above = labels[:, None] > labels[None, :]  # [i, j]: pair i should score higher than pair j
    wrongness = (s[None, :] - s[:, None]).masked_fill(~ranked_above, float("-inf"))  # [i, j] = s_j − s_i
    return torch.logsumexp(torch.cat([wrongness.flatten(), s.new_zeros(1)]), dim=0)


def similarity_loss(name: str, cos: Tensor, labels: Tensor) -> Tensor:
    """The loss named by ``config.similarity_loss`` ("cosine" or "cosent")."""
    if name == "cosine":
        return cosine_similarity_loss(cos, labels)
    if name == "cosent":
        return cosent_loss(cos, labels)
    raise ValueError(f"similarity_loss must be one of {SIMILARITY_LOSSES}, got {name!r}")
