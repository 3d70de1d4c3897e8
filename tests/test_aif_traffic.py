"""The traffic model (benchmarks/traffic.py) follows the launchers, and the targets it is held to.

S = one B×T×E tensor. Targets at mBERT-base bf16 (B=32, T=128, E=768, 132 SMs): every token-tiled
launch at least one full wave, forward ≤ 4 S of HBM traffic, backward ≤ 6 S, L2 traffic within
2× HBM; at B=16, T=512, E=1024 no launch ends in a partial third wave.
"""
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", reason="the launch configuration lives beside the kernels (triton)")
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import traffic  # noqa: E402

from dlfa_kernels import aif_kernels  # noqa: E402

TOKEN_TILED = ("pool", "forward", "backward_dh", "backward")


def launched_kernels(B, T, E, dtype, monkeypatch):
    """Names of the kernels one forward and one backward launch, in order (launches recorded, not run)."""
    names = []
    monkeypatch.setattr(aif_kernels, "_launch", lambda name, cfg, *a, **k: names.append(name))
    monkeypatch.setattr(aif_kernels, "_device_traits", lambda device: (traffic.N_SM, True))
    H = E // 4
    x = torch.empty(B, T, E, dtype=dtype)
    params = [torch.empty(s, dtype=dtype) for s in ((H, E), (H,), (E, H), (E,), (H, E), (H,), (E, H), (E,))]
    mask = torch.ones(B, T, dtype=torch.int64)
    _, g = aif_kernels.aif_forward(x, x, mask, params)
    forward = list(names)
    aif_kernels.aif_backward(x, x, x, mask, params, g)
    return forward, names[len(forward):]


@pytest.mark.parametrize("shape", list(traffic.SHAPES))
def test_model_lists_the_kernels_the_launchers_launch(shape, monkeypatch):
    forward, backward = launched_kernels(*traffic.SHAPES[shape], torch.bfloat16, monkeypatch)
    rows, _ = traffic.model(shape, torch.bfloat16)
    assert [r["kernel"] for r in rows if r["pass"] == "forward"] == forward
    assert [r["kernel"] for r in rows if r["pass"] == "backward"] == backward


def test_model_counts_the_compulsory_bytes():
    rows, S = traffic.model("mbert-base", torch.bfloat16)
    total = traffic.totals(rows, S)
    # at least X, Y read and Z written; X, Y, dZ read and dX, dY written
    assert total["forward"]["hbm_S"] >= 3 and total["backward"]["hbm_S"] >= 5
    for r in rows:
        assert r["l2"] >= r["hbm"] * 0.99 or r["kernel"] == "finalize"  # write-backs land on the last kernel
        assert r["flops_executed"] >= r["flops_useful"] > 0


def test_mbert_base_fills_a_wave_and_long_shape_has_no_partial_third_wave():
    rows, _ = traffic.model("mbert-base", torch.bfloat16)
    for r in rows:
        if r["kernel"] in TOKEN_TILED:
            assert r["programs"] >= traffic.N_SM, r
    rows, _ = traffic.model("long", torch.bfloat16)
    for r in rows:
        assert r["waves"] <= 2, r


def test_mbert_base_forward_hbm_within_4S():
    rows, S = traffic.model("mbert-base", torch.bfloat16)
    assert traffic.totals(rows, S)["forward"]["hbm_S"] <= 4


@pytest.mark.xfail(strict=True, reason="not met by v2: the weight-gradient kernel's one wave of fp32 partials "
                                       "(2 S at mBERT-base) and the N×H buffers take the backward to about 8 S")
def test_mbert_base_backward_hbm_within_6S():
    rows, S = traffic.model("mbert-base", torch.bfloat16)
    assert traffic.totals(rows, S)["backward"]["hbm_S"] <= 6


@pytest.mark.xfail(strict=True, reason="not met by v2: with 16-token tiles (a full wave at mBERT-base) every "
                                       "tile re-reads both E×H local weights from L2, about 25 S per pass")
def test_mbert_base_l2_within_2x_hbm():
    rows, S = traffic.model("mbert-base", torch.bfloat16)
    for t in traffic.totals(rows, S).values():
        assert t["l2_S"] <= 2 * t["hbm_S"]
