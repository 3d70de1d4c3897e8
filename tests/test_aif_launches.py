"""The fused op is a handful of kernel launches with no torch work between them.

Every ATen op dispatched by the fused launchers is recorded (a ``TorchDispatchMode``) and every
Triton kernel launch is counted where Triton runs it (``JITFunction.run`` on a GPU,
``InterpretedFunction.run`` under the interpreter); ATen ops the interpreter itself issues while
emulating a kernel are not the launchers' and are left out. The torch backend is counted the same
way for comparison.
"""
import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

pytest.importorskip("triton", reason="the fused kernels need triton (Linux)")
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from aif_check import random_mask  # noqa: E402
from dlfa_kernels import AIF, aif_kernels  # noqa: E402
from dlfa_kernels.aif_launch_config import launch_config  # noqa: E402
from dlfa_kernels.eager import aif_backward_torch, aif_forward_torch  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ALLOCATIONS = {"aten.empty.memory_format", "aten.empty_strided.default"}
MAX_LAUNCHES = {"forward": 2, "backward": 3}


class _Recorder(TorchDispatchMode):
    """Names of the ATen ops dispatched outside kernel launches, and the kernels launched."""

    def __init__(self):
        super().__init__()
        self.ops, self.launches, self.in_kernel = [], [], False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.in_kernel:
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def recording(monkeypatch):
    recorder = _Recorder()
    with monkeypatch.context() as patch, recorder:
        for cls in (JITFunction, InterpretedFunction):
            _count_launches(patch, cls, recorder)
        yield recorder


def _count_launches(patch, cls, recorder):
    real_run = cls.run

    def run(self, *args, **kwargs):
        if kwargs.get("warmup"):
            return real_run(self, *args, **kwargs)
        recorder.launches.append(self.fn.__name__)
        recorder.in_kernel = True
        try:
            return real_run(self, *args, **kwargs)
        finally:
            recorder.in_kernel = False

    patch.setattr(cls, "run", run)


def inputs(dtype, mask_kind, B=3, T=21, E=96):
    torch.manual_seed(0)
    params = tuple(p.detach().to(DEVICE, dtype) for p in AIF(E, 4).parameters())
    x, y, dz = (torch.randn(B, T, E, device=DEVICE, dtype=dtype) for _ in range(3))
    mask = random_mask(B, T).to(DEVICE)
    mask = {"none": None, "int64": mask, "bool": mask.bool(), "float": mask.float()}[mask_kind]
    return x, y, dz, mask, params


@pytest.mark.parametrize("mask_kind", ["int64", "bool", "float", "none"])
def test_fused_passes_are_few_launches_and_only_allocations(monkeypatch, mask_kind):
    x, y, dz, mask, params = inputs(torch.float16, mask_kind)
    with recording(monkeypatch) as fwd:
        z, kept = aif_kernels.aif_forward(x, y, mask, params)
    with recording(monkeypatch) as bwd:
        grads = aif_kernels.aif_backward(dz, x, y, mask, params, kept)
    with recording(monkeypatch) as ref_fwd:
        _, *saved = aif_forward_torch(x, y, mask, params)
    with recording(monkeypatch) as ref_bwd:
        aif_backward_torch(dz, x, y, mask, params, *saved)
    for name, fused, ref in (("forward", fwd, ref_fwd), ("backward", bwd, ref_bwd)):
        print(f"\n{name} fp16 mask={mask_kind}: fused {len(fused.launches)} launches {fused.launches}, "
              f"{len(fused.ops)} ATen ops {sorted(set(fused.ops))}; torch backend {len(ref.ops)} ATen ops")
        assert 1 <= len(fused.launches) <= MAX_LAUNCHES[name], fused.launches
        assert [op for op in fused.ops if op not in ALLOCATIONS] == [], fused.ops
        assert len(ref.ops) > 0 and not ref.launches  # the recorder sees ATen ops: the zero above is real
    assert z.dtype == x.dtype and [t.dtype for t in kept] == [torch.float32, x.dtype, torch.float32]
    assert [t.dtype for t in grads] == [x.dtype, y.dtype] + [p.dtype for p in params]


def test_module_forward_and_backward_launch_only_the_fused_kernels(monkeypatch):
    x, y, dz, mask, _ = inputs(torch.float32, "int64")
    module = AIF(x.shape[-1], 4, backend="triton").to(DEVICE)
    xr = x.clone().requires_grad_()
    with recording(monkeypatch) as rec:
        module(xr, y, mask).backward(dz)
    assert len(rec.launches) <= MAX_LAUNCHES["forward"] + MAX_LAUNCHES["backward"], rec.launches
    assert set(rec.launches) <= {k.fn.__name__ for k in aif_kernels.KERNELS.values()}


def test_tensors_spanning_2_31_elements_take_narrow_e_chunks():
    """Past 2**31 elements (contiguous or E-outer) the backward's tiles hold 32-wide E chunks, whose
    64-bit offsets fit in registers (tests/test_aif_aot_compile.py compiles them spill-free)."""
    B, T, E = 1, 2**31 // 768 + 1, 768
    huge = torch.empty(B, T, E, device="meta")
    e_outer = torch.empty(B, E, T, device="meta").transpose(1, 2)
    strided = torch.empty(3, 2**30, device="meta")[:, :8]  # 24 elements, the last 2**31 + 7 past the first
    assert aif_kernels._large(huge) and aif_kernels._large(e_outer) and aif_kernels._large(huge[:, :2], strided)
    assert not aif_kernels._large(torch.empty(32, 128, 768, device="meta"), torch.empty(0, 2**40, device="meta"))
    plain, large = (launch_config(B, T, E, E // 4, torch.bfloat16, 132, large=flag) for flag in (False, True))
    assert (plain["backward"]["BLOCK_E"], plain["backward_dh"]["BLOCK_E"]) == (64, 64)
    assert (large["backward"]["BLOCK_E"], large["backward_dh"]["BLOCK_E"]) == (32, 32)
    assert large["forward"] == plain["forward"]  # the forward's tiles, which backward_dh shares, are unchanged
