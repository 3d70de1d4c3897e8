"""Batches for the bi-encoder: the two sentences of each pair padded separately."""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Optional, Union

import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

SIDE_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class SentencePairCollator:
    """Features ``{"input_ids", "attention_mask"?, "token_type_ids"?, "input_ids_b", ..._b, "labels" (or
    "label")?}`` (each sentence tokenized alone) -> a batch of tensors: ``input_ids``... (B, T) padded to the
    longest first sentence, ``input_ids_b``... (B, T_b) to the longest second one, ``labels`` (B,) float32.
    Other keys are dropped. ``padding``, ``max_length``, ``pad_to_multiple_of`` as
    ``transformers.DataCollatorWithPadding``'s, applied to each side."""

    tokenizer: PreTrainedTokenizerBase
    padding: Union[bool, str] = True
    max_length: Optional[int] = None
    pad_to_multiple_of: Optional[int] = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("SentencePairCollator got an empty list of features")
        pad = DataCollatorWithPadding(self.tokenizer, padding=self.padding, max_length=self.max_length,
                                      pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt")
        batch = {}
        for suffix in ("", "_b"):
            for i, f in enumerate(features):
                if f"input_ids{suffix}" not in f:
                    raise ValueError(f"feature {i} has no 'input_ids{suffix}' (keys: {sorted(f)})")
            side = [{k: f[k + suffix] for k in SIDE_KEYS if k + suffix in f} for f in features]
            batch.update({k + suffix: v for k, v in pad(side).items()})
        label_key = "labels" if "labels" in features[0] else "label" if "label" in features[0] else None
        if label_key is not None:
            batch["labels"] = torch.tensor([_label(f, label_key, i) for i, f in enumerate(features)],
                                           dtype=torch.float32)
        return batch


def _label(feature: dict, key: str, i: int) -> float:
    if key not in feature:
        raise ValueError(f"feature {i} has no '{key}' while feature 0 has one")
    value = feature[key]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"feature {i}'s '{key}' must be a number (a similarity), got {value!r}")
    return float(value)
