"""Start an AIF at a chosen mix of its two inputs instead of a random gate."""
from __future__ import annotations

import math

import torch
from torch import nn

from dlfa_kernels import AIF

from .configuration_dlfa import check_gate_init


@torch.no_grad()
def init_gate(aif: AIF, p: float) -> AIF:
    """Make ``aif`` output exactly p·X + (1 − p)·Y for every token, whatever its inputs.

    Zeroes both up-projections (weights, and global_up's bias) and sets local_up's
    bias to logit(p), so the gate M = σ(L + G) = σ(logit(p)) = p everywhere. The
    down-projections keep their random weights: the up-projections' gradients
    (dM through relu(down(·))) are nonzero from the first step, so training moves
    the gate away from p. Returns ``aif``.
    """
    p = check_gate_init(p)
    if p is None:
        raise ValueError("init_gate needs a mix p strictly between 0 and 1")
    # nn.init's functions (looked up at call time): inside a Hugging Face model's weight
    # initialisation they leave parameters loaded from a checkpoint untouched.
    nn.init.zeros_(aif.local_up.weight)
    nn.init.constant_(aif.local_up.bias, math.log(p / (1 - p)))
    nn.init.zeros_(aif.global_up.weight)
    nn.init.zeros_(aif.global_up.bias)
    return aif
