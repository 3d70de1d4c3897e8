"""Helpers shared by the AIF tests: inputs, the float64 reference, the comparison rule (2 × the same-dtype reference error)."""
from __future__ import annotations

import torch

from dlfa_kernels import AIF, aif_reference

# floor added to 2 × (error of the reference run in the same dtype)
FLOOR = {torch.float32: 1e-6, torch.float16: 1e-4, torch.bfloat16: 1e-3, torch.float64: 1e-12}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    scale = ref.norm().item()
    return (out - ref).norm().item() / (scale if scale > 0 else 1.0)


def random_mask(B: int, T: int, generator=None, all_padding_row: bool = True) -> torch.Tensor:
    """(B, T) int64 mask with random lengths; the last row all padding when B > 1."""
    lengths = torch.randint(1, T + 1, (B,), generator=generator)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    if all_padding_row and B > 1:
        mask[-1] = 0
    return mask


def run_reference(module: AIF, x, y, mask, dz, dtype):
    """Reference output and gradients (x, y, then parameters) computed in ``dtype``."""
    params = [p.detach().to(dtype).requires_grad_() for p in module.parameters()]
    xr = x.detach().to(dtype).requires_grad_()
    yr = y.detach().to(dtype).requires_grad_()
    z = aif_reference(xr, yr, None if mask is None else mask.to(dtype), *params)
    z.backward(dz.to(dtype))
    return [z.detach(), xr.grad, yr.grad] + [p.grad for p in params]


def run_module(module: AIF, x, y, mask, dz):
    """Module output and gradients (x, y, then parameters)."""
    module.zero_grad(set_to_none=True)
    xr = x.detach().clone().requires_grad_()
    yr = y.detach().clone().requires_grad_()
    z = module(xr, yr, mask)
    z.backward(dz)
    return [z.detach(), xr.grad, yr.grad] + [p.grad for p in module.parameters()]


NAMES = ["z", "dx", "dy"] + [f"d{n}" for n, _ in AIF(8, 2).named_parameters()]


def assert_matches_reference(results, module: AIF, x, y, mask, dz, dtype):
    """Every tensor of ``results`` within 2 × the same-dtype reference's error (+ floor) of float64."""
    ref64 = run_reference(module, x, y, mask, dz, torch.float64)
    ref_d = run_reference(module, x, y, mask, dz, dtype)
    assert len(results) == len(ref64) == len(NAMES)
    for name, out, r64, rd in zip(NAMES, results, ref64, ref_d):
        assert out is not None, f"{name}: no gradient"
        assert out.shape == r64.shape, f"{name}: shape {tuple(out.shape)} != {tuple(r64.shape)}"
        err, err_ref = rel_err(out, r64), rel_err(rd, r64)
        bound = 2 * err_ref + FLOOR[dtype]
        assert err <= bound, f"{name}: relative error {err:.3e} > bound {bound:.3e} (reference in {dtype}: {err_ref:.3e})"
