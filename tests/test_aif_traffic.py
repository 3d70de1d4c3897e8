"""The traffic and time model (benchmarks/traffic.py) follows the launchers, and the targets it is held to.

S = one B×T×E tensor. Targets at mBERT-base bf16 (B=32, T=128, E=768, 132 SMs): modelled time
forward ≤ 16 µs and backward ≤ 28 µs (H200 constants, issue 18), at least 32 programs in every launch,
a full wave for the weight-gradient kernel, forward ≤ 4 S of HBM traffic; at B=16, T=512, E=1024 no
launch ends in a partial third wave. Which unit each kernel's dots run on is checked against its
machine code in tests/test_aif_aot_compile.py.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", reason="the launch configuration lives beside the kernels (triton)")
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import traffic  # noqa: E402

from dlfa_kernels import aif_kernels  # noqa: E402


def launched_kernels(B, T, E, dtype, monkeypatch):
    """Names of the kernels one forward and one backward launch, in order (launches recorded, not run)."""
    names = []
    monkeypatch.setattr(aif_kernels, "_launch", lambda name, cfg, *a, **k: names.append(name))
    monkeypatch.setattr(aif_kernels, "_device_traits", lambda device: (traffic.N_SM, True))
    H = E // 4
    x = torch.empty(B, T, E, dtype=dtype)
    params = [torch.empty(s, dtype=dtype) for s in ((H, E), (H,), (E, H), (E,), (H, E), (H,), (E, H), (E,))]
    mask = torch.ones(B, T, dtype=torch.int64)
    _, kept = aif_kernels.aif_forward(x, x, mask, params)
    forward = list(names)
    aif_kernels.aif_backward(x, x, x, mask, params, kept)
    return forward, names[len(forward):]


@pytest.mark.parametrize("shape", list(traffic.SHAPES))
def test_model_lists_the_kernels_the_launchers_launch(shape, monkeypatch):
    forward, backward = launched_kernels(*traffic.SHAPES[shape], torch.bfloat16, monkeypatch)
    rows, _ = traffic.model(shape, torch.bfloat16)
    assert [r["kernel"] for r in rows if r["pass"] == "forward"] == forward
    assert [r["kernel"] for r in rows if r["pass"] == "backward"] == backward


def test_model_counts_the_compulsory_bytes_and_every_product():
    rows, S = traffic.model("mbert-base", torch.bfloat16)
    total = traffic.totals(rows, S)
    # at least X, Y read and Z written; X, Y, dZ read and dX, dY written
    assert total["forward"]["hbm_S"] >= 3 and total["backward"]["hbm_S"] >= 5
    for r in rows:
        assert r["l2"] >= r["hbm"] * 0.99 or r["kernel"] == "finalize"  # write-backs land on the last kernel
        assert r["flops_executed"] + r["flops_vector"] >= r["flops_useful"] > 0, r


def test_time_is_the_slowest_resource_plus_the_launch():
    kernel = traffic.Kernel("k", programs=66, flops_useful=0, flops_executed=790e12 * 1e-6)  # half the SMs
    kernel.read("x", 43e6)  # 10 µs of HBM if not resident, 4.3 µs of L2
    assert kernel.seconds(hbm=43e6)["time"] == pytest.approx(11.5e-6)
    t = kernel.seconds(hbm=0)
    assert t["bound"] == "l2" and t["time"] == pytest.approx(5.8e-6)
    assert t["tensor"] == pytest.approx(2e-6)  # 1 µs of tensor-core work at full occupancy, half the SMs
    kernel.unit = "tf32"
    assert kernel.seconds(hbm=0)["tensor"] == pytest.approx(4e-6)


def test_mbert_base_bf16_modelled_time_within_targets():
    passes = traffic.as_json()["mbert-base"]["bf16"]
    assert passes["forward"]["time_us"] <= 16, passes["forward"]
    assert passes["backward"]["time_us"] <= 28, passes["backward"]


def test_json_output_has_every_shape_dtype_and_pass():
    run = subprocess.run([sys.executable, str(BENCHMARKS / "traffic.py"), "--json"], capture_output=True, text=True,
                         check=True)
    out = json.loads(run.stdout)
    assert set(out) == {"mbert-base", "long"}
    for shape in out.values():
        assert set(shape) == {"bf16", "fp32"}
        for passes in shape.values():
            assert set(passes) == {"forward", "backward"}
            for p in passes.values():
                assert p["time_us"] == pytest.approx(sum(k["time_us"] for k in p["kernels"]))
                assert all({"kernel", "programs", "unit", "l2", "hbm", "bound"} <= set(k) for k in p["kernels"])


def test_mbert_base_parallel_enough_and_long_shape_has_no_partial_third_wave():
    rows, _ = traffic.model("mbert-base", torch.bfloat16)
    for r in rows:
        assert r["programs"] >= 32, r
        if r["kernel"] == "backward":
            assert r["programs"] >= traffic.N_SM, r
    rows, _ = traffic.model("long", torch.bfloat16)
    for r in rows:
        assert r["waves"] <= 2, r


def test_mbert_base_forward_hbm_within_4S():
    rows, S = traffic.model("mbert-base", torch.bfloat16)
    assert traffic.totals(rows, S)["forward"]["hbm_S"] <= 4


@pytest.mark.xfail(strict=True, reason="not met by v3 (8.1 S): the weight-gradient kernel's one wave of fp32 "
                                       "partials (2 S at mBERT-base) and the N×H buffers; the time model "
                                       "(backward ≤ 28 µs) is the target now")
def test_mbert_base_backward_hbm_within_6S():
    rows, S = traffic.model("mbert-base", torch.bfloat16)
    assert traffic.totals(rows, S)["backward"]["hbm_S"] <= 6


@pytest.mark.xfail(strict=True, reason="not met by v3: each token tile re-reads the E×H local weights from L2 "
                                       "(64 tiles: 6 S forward); the time model costs L2 against idle SMs instead")
def test_mbert_base_l2_within_2x_hbm():
    rows, S = traffic.model("mbert-base", torch.bfloat16)
    for t in traffic.totals(rows, S).values():
        assert t["l2_S"] <= 2 * t["hbm_S"]
