"""Launchers of the AIF fusion's Triton kernels: the whole op with no torch work between launches.

Shapes: x, y, z: (B, T, E), any strides; N = B·T tokens; H = E / reduction;
mask: (B, T) of any dtype, or None (plain mean over T). Parameters as in ``nn.Linear``:
local_down ``wd``: (H, E), local_up ``wu``: (E, H), global_down (H, E), global_up (E, H).

Forward, 2 launches (kernels in ``aif_forward_kernels``):
  1. ``_aif_pool_kernel``            per (sequence, E chunk): g = masked mean of X + Y over T (B, E) fp32,
                                     mask counts in-kernel, and the chunk's share of g·global_downᵀ
  2. ``_aif_forward_kernel``         per token tile of one sequence: hg = relu(Σ shares + bias), gb =
                                     global_up(hg) + local_up.bias; h = relu(W·wdᵀ + bd) (kept),
                                     M = σ(h·wuᵀ + gb), Z = Y + M ⊙ (X − Y)
  Kept for the backward: g (B, E), h (B, T, H) in x's dtype, gb and hg (B, E + H) fp32.
Backward, 3 launches (``aif_backward_kernels``):
  1. ``_aif_backward_dh_kernel``     per token tile: dh_pre = (dS·wu) ⊙ [h > 0] (N, H), and per-tile sums
                                     Σ dS (→ dG), Σ dh_pre (→ local_down.bias), (Σ dS)·global_up.weight
                                     (→ dhg), the tile's real tokens (→ count)
  2. ``_aif_backward_kernel``        per (E chunk, token split): dX, dY (the global term as one more dot)
                                     and the split's fp32 partial dwu = dSᵀ·h, dwdᵀ = Wᵀ·dh_pre
  3. ``_aif_backward_finalize_kernel`` per E chunk: sums the partials into the local weights' gradients,
                                     and the global branch's gradients from the tiles' sums

Every matrix product with more than one row runs as ``tl.dot`` (tensor cores for fp16/bf16; fp32
follows torch's tf32 setting); the per-sequence vector-matrix products of the global branch (one row
each) run on CUDA cores inside the pool, forward and backward_dh kernels.

W = X + Y is never formed in the input dtype: the GEMM operand is W/2 (rounded once, like W, and
within range wherever X and Y are), the product doubled in fp32; the mean and every other use of W
is fp32. The hidden width H is covered by two power-of-two column blocks (192 = 128 + 64) instead
of one padded block. Tile sizes and grids: ``aif_launch_config``.
"""
from __future__ import annotations

import torch

from .aif_backward_kernels import _aif_backward_dh_kernel, _aif_backward_finalize_kernel, _aif_backward_kernel
from .aif_forward_kernels import _aif_forward_kernel, _aif_pool_kernel
from .aif_launch_config import CONSTEXPRS, launch_config

try:  # torch >= 2.6: kernels launched through it are traceable by torch.compile
    from torch.library import wrap_triton as _wrap
except ImportError:  # pragma: no cover - older torch
    def _wrap(kernel):
        return kernel


KERNELS = {
    "pool": _aif_pool_kernel, "forward": _aif_forward_kernel,
    "backward_dh": _aif_backward_dh_kernel, "backward": _aif_backward_kernel, "finalize": _aif_backward_finalize_kernel,
}


def _device_traits(device: torch.device) -> tuple[int, bool]:
    """(number of SMs, sm_90 or later) of the device the kernels run on."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return props.multi_processor_count, props.major >= 9
    return 4, True  # the interpreter runs programs one after another: few, large ones


def _large(*tensors) -> bool:
    """Whether an element of one of these tensors lies 2**31 or more elements past its first, where the
    kernels' offsets (and the strides Triton passes) are 64-bit and the tiles must hold fewer of them."""
    return any(sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride())) >= 2**31 for t in tensors if t.numel())


def _launch(name: str, cfg: dict, *args, **constexprs):
    """Launch kernel ``name`` on its configured grid with its configured tile sizes and options."""
    c = cfg[name]
    options = {k: c[k] for k in CONSTEXPRS[name]}
    options.update(num_warps=c["num_warps"], num_stages=c.get("num_stages", 1))
    _wrap(KERNELS[name])[c["grid"]](*args, **options, **constexprs)


def _mask_args(mask, x):
    """(pointer, stride_b, stride_t, HAS_MASK) for a mask of any dtype, or no mask (x stands in)."""
    if mask is None:
        return x, 0, 0, False
    return mask, mask.stride(0), mask.stride(1), True


# ----------------------------------------------------------------------------- launchers

def aif_forward(x, y, mask, params):
    """z: (B, T, E) in x's dtype, and what the backward needs: (g, h, glob) — g: (B, E) fp32 the masked
    mean of X + Y; h: (B, T, H) contiguous in x's dtype, the local hidden activation; glob: (B, E + H) fp32, gb = G +
    local_up.bias then hg = relu(global_down(g)). At most 2 launches.

    mask: (B, T) of any dtype (nonzero = token) or None; params: the eight AIF parameters.
    """
    wld, bld, wlu, blu, wgd, bgd, wgu, bgu = params
    B, T, E = x.shape
    H = wld.shape[0]
    dev, f32 = x.device, torch.float32
    z = torch.empty((B, T, E), device=dev, dtype=x.dtype)
    g = torch.empty((B, E), device=dev, dtype=f32)
    h = torch.empty((B, T, H), device=dev, dtype=x.dtype)
    glob = torch.empty((B, E + H), device=dev, dtype=f32)
    if B == 0:
        return z, (g, h, glob)
    cfg = launch_config(B, T, E, H, x.dtype, *_device_traits(dev))
    m, smb, smt, has_mask = _mask_args(mask, x)
    n_g_chunks = cfg["pool"]["grid"][1]
    hg_part = torch.empty((B, n_g_chunks, H), device=dev, dtype=f32)
    _launch("pool", cfg, x, y, m, wgd, g, hg_part, T, E, H, *x.stride(), *y.stride(), smb, smt, *wgd.stride(),
            HAS_MASK=has_mask)
    f = cfg["forward"]  # T = 0 still runs one empty tile a sequence: it finishes the global branch
    gb_tile = torch.empty((f["grid"][0], E), device=dev, dtype=f32)
    _launch("forward", cfg, x, y, z, wld, bld, wlu, hg_part, bgd, wgu, bgu, blu, h, glob, gb_tile,
            T, E, H, f["n_t_tiles"], f["tile_t"], n_g_chunks,
            *x.stride(), *y.stride(), *z.stride(), *wld.stride(), *wlu.stride(), *wgu.stride())
    return z, (g, h, glob)


def aif_backward(dz, x, y, mask, params, saved):
    """[dx, dy, then the gradient of each parameter in its own dtype]. At most 3 launches.

    dz, x, y: (B, T, E); saved: the (g, h, glob) that :func:`aif_forward` returned.
    """
    wld, bld, wlu, _, wgd, _, wgu, _ = params
    g, h, glob = saved
    B, T, E = x.shape
    H = wld.shape[0]
    dev, f32 = x.device, torch.float32
    cfg = launch_config(B, T, E, H, x.dtype, *_device_traits(dev), large=_large(x, y, dz))
    dx = torch.empty((B, T, E), device=dev, dtype=x.dtype)
    dy = torch.empty((B, T, E), device=dev, dtype=y.dtype)
    grads = [torch.empty(p.shape, device=dev, dtype=p.dtype) for p in params]
    m, smb, smt, has_mask = _mask_args(mask, x)
    d = cfg["backward_dh"]
    n_tiles, n_dh_tiles = d["grid"][0], d["n_t_tiles"]
    dw = cfg["backward"]
    n_splits = dw["grid"][1]
    dbd_part = torch.empty((n_tiles, H), device=dev, dtype=f32)
    dg_part = torch.empty((n_tiles, E), device=dev, dtype=f32)
    dhg_part = torch.empty((n_tiles, H), device=dev, dtype=f32)
    count_part = torch.empty((n_tiles,), device=dev, dtype=f32)
    dwu_part = torch.empty((n_splits, E, H), device=dev, dtype=f32)
    dwd_part = torch.empty((n_splits, E, H), device=dev, dtype=f32)
    dh_pre = torch.empty((B * T, H), device=dev, dtype=x.dtype)
    if n_tiles > 0:
        _launch("backward_dh", cfg, x, y, dz, m, h, wlu, glob, wgu, dh_pre, dg_part, dbd_part, dhg_part, count_part,
                T, E, H, n_dh_tiles, d["tile_t"], *x.stride(), *y.stride(), *dz.stride(), smb, smt,
                *wlu.stride(), *wgu.stride(), HAS_MASK=has_mask)
    if n_splits > 0:
        _launch("backward", cfg, x, y, dz, dx, dy, wld, wlu, wgd, glob, dhg_part, count_part, m, h, dh_pre,
                dwu_part, dwd_part, T, E, H, dw["n_t_tiles"], dw["n_tiles"], dw["tiles_per_split"], n_dh_tiles,
                *x.stride(), *y.stride(), *dz.stride(), *dx.stride(), *dy.stride(), smb, smt,
                *wld.stride(), *wlu.stride(), *wgd.stride(), HAS_MASK=has_mask)
    _launch("finalize", cfg, dwu_part, dwd_part, dbd_part, dg_part, dhg_part, g, glob, *grads,
            B, E, H, n_splits, n_tiles, n_dh_tiles)
    return [dx, dy] + grads
