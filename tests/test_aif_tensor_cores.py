"""Every matrix product of the fused op runs on tensor cores, at full parallelism, as the time model assumes.

Each launch of one forward and one backward is compiled for sm_90 as launched at mBERT-base and at the
long shape (bf16, padding mask) by ``tests/sass_census.py``, and its SASS read: every kernel whose dots
the model (benchmarks/traffic.py) puts on tensor cores has MMA instructions (HGMMA = wgmma or HMMA =
mma.sync), the forward and backward_dh kernels wgmma, none spills, and at mBERT-base every launch has at
least 32 programs.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", reason="the kernels need triton (Linux)")
TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS.parent / "benchmarks"))
import traffic  # noqa: E402


@pytest.mark.parametrize("shape", ["mbert-base", "long"])
def test_sm90_sass_puts_every_product_on_tensor_cores(shape):
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(TESTS.parent))
    run = subprocess.run([sys.executable, str(TESTS / "sass_census.py"), "--sm", "90", "--shape", shape],
                         capture_output=True, text=True, env=env, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    found = {r["kernel"]: r for r in map(json.loads, run.stdout.splitlines())}
    print("\n" + "\n".join(json.dumps(r) for r in found.values()))
    rows, _ = traffic.model(shape, torch.bfloat16)
    assert set(found) == {r["kernel"] for r in rows}
    for r in rows:
        sass = found[r["kernel"]]
        assert sass["programs"] == r["programs"], (sass, r)
        assert not (sass["spill_stores"] or sass["spill_loads"] or sass["local_bytes"]), sass
        if r["unit"] == "tensor":
            assert sass["HGMMA"] + sass["HMMA"] > 0, sass
        else:  # no dots: the pool's mean and its one-row products
            assert r["flops_executed"] == 0 and sass["HGMMA"] + sass["HMMA"] == 0, sass
        if shape == "mbert-base":
            assert r["programs"] >= 32, r
    assert found["forward"]["HGMMA"] > 0 and found["backward_dh"]["HGMMA"] > 0
