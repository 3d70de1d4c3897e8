"""Fused Triton kernels for AIF, the attentional fusion of two encoder layers (DLFA).

``AIF`` is the drop-in layer, ``aif`` its functional form, ``aif_reference`` the
specification in plain PyTorch.
"""
from .backend import BACKENDS, resolve_backend, triton_available
from .module import AIF
from .ops import aif
from .reference import aif_gate, aif_reference, masked_mean

__all__ = ["AIF", "aif", "aif_gate", "aif_reference", "masked_mean", "BACKENDS", "resolve_backend", "triton_available"]
__version__ = "0.1.0"
