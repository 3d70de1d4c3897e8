"""Triton kernels of the AIF fusion and their launchers.

Shapes: x, y, z: (B, T, E), any strides; N = B·T tokens; H = E / reduction.
local_down_weight ``wd``: (H, E), local_up_weight ``wu``: (E, H).

Forward (two launches and O(B·E) torch work between them):
  1. ``_aif_pool_kernel``      g = masked mean of W = X + Y over T        (B, E) fp32
  2. (torch)                   gb = global_up(relu(global_down(g))) + local_up.bias
  3. ``_aif_forward_kernel``   h = relu(W·wdᵀ + bd) on chip; M = σ(h·wuᵀ + gb); Z

Backward (two launches; nothing B×T×E is stored in between):
  1. ``_aif_backward_dh_kernel``  recompute h and M, dS = dZ⊙(X−Y)⊙M⊙(1−M);
     writes h and dh_pre = (dS·wu)⊙[h>0] (N, H) and per-tile column sums of dS.
  2. (torch)                      dG → global branch backward → dg (B, E)
  3. ``_aif_backward_kernel``     per (E chunk, token split): dX, dY and fp32
     partial sums of dwu = dSᵀ·h and dwdᵀ = Wᵀ·dh_pre, summed once afterwards.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

try:  # torch >= 2.6: kernels launched through it are traceable by torch.compile
    from torch.library import wrap_triton as _wrap
except ImportError:  # pragma: no cover - older torch
    def _wrap(kernel):
        return kernel


@triton.jit
def _aif_pool_kernel(
    X, Y, MASK, INV_COUNT, G_OUT,
    T, E,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr,
):
    """G[b, e] = Σ_t mask[b,t]·(X+Y)[b,t,e] · inv_count[b]; grid (B, cdiv(E, BLOCK_E))."""
    b = tl.program_id(0).to(tl.int64)
    offs_e = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    e_ok = offs_e < E
    acc = tl.zeros([BLOCK_E], dtype=tl.float32)
    for t0 in range(0, T, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T).to(tl.int64)
        t_ok = offs_t < T
        ok = t_ok[:, None] & e_ok[None, :]
        m = tl.load(MASK + b * T + offs_t, mask=t_ok, other=0.0)
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        w = x.to(tl.float32) + y.to(tl.float32)
        # where, not a product: a NaN in a padded position must not reach the mean
        acc += tl.sum(tl.where(m[:, None] != 0, w * m[:, None], 0.0), axis=0)
    inv = tl.load(INV_COUNT + b)
    tl.store(G_OUT + b * E + offs_e, acc * inv, mask=e_ok)


@triton.jit
def _local_hidden(
    X, Y, WD, BD, b, offs_t, t_ok, offs_h, h_ok, E,
    stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
    stride_wdh, stride_wde,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, H_PAD: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Pre-activation of the local bottleneck for one token tile: W·wdᵀ + bd, (BLOCK_M, H_PAD) fp32."""
    acc = tl.zeros([BLOCK_M, H_PAD], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        e_ok = offs_e < E
        ok = t_ok[:, None] & e_ok[None, :]
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        w = (x.to(tl.float32) + y.to(tl.float32)).to(x.dtype)
        wd_t = tl.load(WD + offs_h[None, :] * stride_wdh + offs_e[:, None] * stride_wde,
                       mask=h_ok[None, :] & e_ok[:, None], other=0.0)
        acc = tl.dot(w, wd_t, acc, input_precision=DOT_PRECISION)
    bd = tl.load(BD + offs_h, mask=h_ok, other=0.0).to(tl.float32)
    return acc + bd[None, :]


@triton.jit
def _aif_forward_kernel(
    X, Y, Z, WD, BD, WU, GB,
    T, E, H, n_t_tiles,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_zb, stride_zt, stride_ze,
    stride_wdh, stride_wde, stride_wue, stride_wuh,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, H_PAD: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Z for one tile of BLOCK_M tokens of one sequence; grid (B · n_t_tiles,)."""
    pid = tl.program_id(0).to(tl.int64)
    b = pid // n_t_tiles
    offs_t = (pid % n_t_tiles) * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    t_ok = offs_t < T
    offs_h = tl.arange(0, H_PAD)
    h_ok = offs_h < H
    h_pre = _local_hidden(X, Y, WD, BD, b, offs_t, t_ok, offs_h, h_ok, E,
                          stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                          stride_wdh, stride_wde, BLOCK_M, BLOCK_E, H_PAD, DOT_PRECISION)
    h = tl.maximum(h_pre, 0.0).to(X.dtype.element_ty)
    for e0 in range(0, E, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        e_ok = offs_e < E
        ok = t_ok[:, None] & e_ok[None, :]
        wu_t = tl.load(WU + offs_e[None, :] * stride_wue + offs_h[:, None] * stride_wuh,
                       mask=e_ok[None, :] & h_ok[:, None], other=0.0)
        gb = tl.load(GB + b * E + offs_e, mask=e_ok, other=0.0)
        gate = tl.sigmoid(tl.dot(h, wu_t, input_precision=DOT_PRECISION) + gb[None, :])
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        y = y.to(tl.float32)
        z = y + gate * (x.to(tl.float32) - y)
        tl.store(Z + b * stride_zb + offs_t[:, None] * stride_zt + offs_e[None, :] * stride_ze,
                 z.to(Z.dtype.element_ty), mask=ok)


@triton.jit
def _aif_backward_dh_kernel(
    X, Y, DZ, WD, BD, WU, GB, H_OUT, DH_OUT, DG_PART,
    T, E, H, n_t_tiles,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_dzb, stride_dzt, stride_dze,
    stride_wdh, stride_wde, stride_wue, stride_wuh,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, H_PAD: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """h, dh_pre (N, H) and Σ_tile dS (B·n_t_tiles, E) for one token tile; grid (B · n_t_tiles,)."""
    pid = tl.program_id(0).to(tl.int64)
    b = pid // n_t_tiles
    offs_t = (pid % n_t_tiles) * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    t_ok = offs_t < T
    offs_h = tl.arange(0, H_PAD)
    h_ok = offs_h < H
    h_pre = _local_hidden(X, Y, WD, BD, b, offs_t, t_ok, offs_h, h_ok, E,
                          stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                          stride_wdh, stride_wde, BLOCK_M, BLOCK_E, H_PAD, DOT_PRECISION)
    h = tl.maximum(h_pre, 0.0).to(X.dtype.element_ty)
    dh = tl.zeros([BLOCK_M, H_PAD], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        e_ok = offs_e < E
        ok = t_ok[:, None] & e_ok[None, :]
        wu = tl.load(WU + offs_e[:, None] * stride_wue + offs_h[None, :] * stride_wuh,
                     mask=e_ok[:, None] & h_ok[None, :], other=0.0)
        gb = tl.load(GB + b * E + offs_e, mask=e_ok, other=0.0)
        gate = tl.sigmoid(tl.dot(h, tl.trans(wu), input_precision=DOT_PRECISION) + gb[None, :])
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        dz = tl.load(DZ + b * stride_dzb + offs_t[:, None] * stride_dzt + offs_e[None, :] * stride_dze, mask=ok, other=0.0)
        ds = dz.to(tl.float32) * (x.to(tl.float32) - y.to(tl.float32)) * gate * (1.0 - gate)
        ds = tl.where(ok, ds, 0.0)
        tl.store(DG_PART + pid * E + offs_e, tl.sum(ds, axis=0), mask=e_ok)
        dh = tl.dot(ds.to(X.dtype.element_ty), wu, dh, input_precision=DOT_PRECISION)
    dh_pre = tl.where(h_pre > 0, dh, 0.0)
    rows = b * T + offs_t
    ok_h = t_ok[:, None] & h_ok[None, :]
    tl.store(H_OUT + rows[:, None] * H + offs_h[None, :], h, mask=ok_h)
    tl.store(DH_OUT + rows[:, None] * H + offs_h[None, :], dh_pre.to(DH_OUT.dtype.element_ty), mask=ok_h)


@triton.jit
def _aif_backward_kernel(
    X, Y, DZ, DX, DY, WD, WU, GB, DGS, MASK, H_BUF, DH_BUF, DWU_PART, DWD_PART,
    N, T, E, H, tokens_per_split,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_dzb, stride_dzt, stride_dze,
    stride_dxb, stride_dxt, stride_dxe,
    stride_dyb, stride_dyt, stride_dye,
    stride_wdh, stride_wde, stride_wue, stride_wuh,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, H_PAD: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """dX, dY on one E chunk of a token split, and that split's partial dwu, dwdᵀ rows.

    grid (cdiv(E, BLOCK_E), n_splits). dW = dh_pre·wd + dgs[b]·mask[b,t], where
    dgs = dg / count already; dX = dZ⊙M + dW, dY = dZ⊙(1−M) + dW.
    """
    offs_e = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
    split = tl.program_id(1).to(tl.int64)
    e_ok = offs_e < E
    offs_h = tl.arange(0, H_PAD)
    h_ok = offs_h < H
    wu_t = tl.load(WU + offs_e[None, :] * stride_wue + offs_h[:, None] * stride_wuh,
                   mask=e_ok[None, :] & h_ok[:, None], other=0.0)
    wd = tl.load(WD + offs_h[:, None] * stride_wdh + offs_e[None, :] * stride_wde,
                 mask=h_ok[:, None] & e_ok[None, :], other=0.0)
    acc_wu = tl.zeros([BLOCK_E, H_PAD], dtype=tl.float32)
    acc_wd = tl.zeros([BLOCK_E, H_PAD], dtype=tl.float32)
    start = split * tokens_per_split
    for n0 in range(0, tokens_per_split, BLOCK_M):
        offs_n = start + n0 + tl.arange(0, BLOCK_M).to(tl.int64)
        n_ok = offs_n < N
        b = offs_n // T
        t = offs_n % T
        ok = n_ok[:, None] & e_ok[None, :]
        ok_h = n_ok[:, None] & h_ok[None, :]
        h = tl.load(H_BUF + offs_n[:, None] * H + offs_h[None, :], mask=ok_h, other=0.0)
        dh_pre = tl.load(DH_BUF + offs_n[:, None] * H + offs_h[None, :], mask=ok_h, other=0.0)
        gb = tl.load(GB + b[:, None] * E + offs_e[None, :], mask=ok, other=0.0)
        gate = tl.sigmoid(tl.dot(h, wu_t, input_precision=DOT_PRECISION) + gb)
        x = tl.load(X + b[:, None] * stride_xb + t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b[:, None] * stride_yb + t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        dz = tl.load(DZ + b[:, None] * stride_dzb + t[:, None] * stride_dzt + offs_e[None, :] * stride_dze,
                     mask=ok, other=0.0).to(tl.float32)
        m = tl.load(MASK + offs_n, mask=n_ok, other=0.0)
        dgs = tl.load(DGS + b[:, None] * E + offs_e[None, :], mask=ok, other=0.0)
        dw = tl.dot(dh_pre, wd, input_precision=DOT_PRECISION) + dgs * m[:, None]
        tl.store(DX + b[:, None] * stride_dxb + t[:, None] * stride_dxt + offs_e[None, :] * stride_dxe,
                 (dz * gate + dw).to(DX.dtype.element_ty), mask=ok)
        tl.store(DY + b[:, None] * stride_dyb + t[:, None] * stride_dyt + offs_e[None, :] * stride_dye,
                 (dz * (1.0 - gate) + dw).to(DY.dtype.element_ty), mask=ok)
        xf = x.to(tl.float32)
        yf = y.to(tl.float32)
        ds = tl.where(ok, dz * (xf - yf) * gate * (1.0 - gate), 0.0).to(x.dtype)
        acc_wu = tl.dot(tl.trans(ds), h, acc_wu, input_precision=DOT_PRECISION)
        acc_wd = tl.dot(tl.trans((xf + yf).to(x.dtype)), dh_pre, acc_wd, input_precision=DOT_PRECISION)
    part = split * E * H + offs_e[:, None] * H + offs_h[None, :]
    ok_eh = e_ok[:, None] & h_ok[None, :]
    tl.store(DWU_PART + part, acc_wu, mask=ok_eh)
    tl.store(DWD_PART + part, acc_wd, mask=ok_eh)


# ----------------------------------------------------------------------------- launchers

def kernel_config(E: int, H: int, dtype: torch.dtype) -> dict:
    """Tile sizes and launch options, keyed on E, H and dtype only (never on B·T).

    fp32 tiles are half as wide and single-staged so that every configuration
    stays under Ampere's 163 KB of shared memory per block (tests/aot_compile.py).
    """
    h_pad = max(16, triton.next_power_of_2(H))
    wide = h_pad >= 256
    half = dtype != torch.float32
    return {
        "BLOCK_M": 32 if h_pad >= 512 or (wide and not half) else 64,
        "BLOCK_E": 64 if half else 32,
        "BLOCK_E_DW": 64 if half and not wide else 32,
        "H_PAD": h_pad,
        "num_warps": 8 if wide else 4,
        "num_stages": 2 if half else 1,
        "DOT_PRECISION": dot_precision(dtype),
    }


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 dots follow torch's matmul setting, as nn.Linear does ("ieee" unless tf32 is allowed)."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def pool_forward(x, y, mask, inv_count):
    """Masked mean of X + Y over T. x, y: (B, T, E); mask: (B, T) fp32; inv_count: (B,) -> (B, E) fp32."""
    B, T, E = x.shape
    g = torch.empty((B, E), device=x.device, dtype=torch.float32)
    if B == 0:
        return g
    block_e = 64
    _wrap(_aif_pool_kernel)[(B, triton.cdiv(E, block_e))](
        x, y, mask, inv_count, g, T, E, *x.stride(), *y.stride(),
        BLOCK_T=32, BLOCK_E=block_e, num_warps=4,
    )
    return g


def local_forward(x, y, wd, bd, wu, gb):
    """Z = Y + σ(relu(W·wdᵀ + bd)·wuᵀ + gb[b]) ⊙ (X − Y). gb: (B, E) fp32 (G + local_up bias)."""
    B, T, E = x.shape
    H = wd.shape[0]
    z = torch.empty((B, T, E), device=x.device, dtype=x.dtype)
    if z.numel() == 0:
        return z
    c = kernel_config(E, H, x.dtype)
    n_t_tiles = triton.cdiv(T, c["BLOCK_M"])
    _wrap(_aif_forward_kernel)[(B * n_t_tiles,)](
        x, y, z, wd, bd, wu, gb, T, E, H, n_t_tiles,
        *x.stride(), *y.stride(), *z.stride(), *wd.stride(), *wu.stride(),
        BLOCK_M=c["BLOCK_M"], BLOCK_E=c["BLOCK_E"], H_PAD=c["H_PAD"], DOT_PRECISION=c["DOT_PRECISION"],
        num_warps=c["num_warps"], num_stages=c["num_stages"],
    )
    return z


def local_backward_hidden(x, y, dz, wd, bd, wu, gb):
    """First backward pass. Returns h, dh_pre: (N, H) in x's dtype and dG: (B, E) fp32 = Σ_t dS."""
    B, T, E = x.shape
    H = wd.shape[0]
    c = kernel_config(E, H, x.dtype)
    n_t_tiles = triton.cdiv(T, c["BLOCK_M"])
    h = torch.empty((B * T, H), device=x.device, dtype=x.dtype)
    dh_pre = torch.empty((B * T, H), device=x.device, dtype=x.dtype)
    dg_part = torch.empty((B * n_t_tiles, E), device=x.device, dtype=torch.float32)
    if B * T > 0:
        _wrap(_aif_backward_dh_kernel)[(B * n_t_tiles,)](
            x, y, dz, wd, bd, wu, gb, h, dh_pre, dg_part, T, E, H, n_t_tiles,
            *x.stride(), *y.stride(), *dz.stride(), *wd.stride(), *wu.stride(),
            BLOCK_M=c["BLOCK_M"], BLOCK_E=c["BLOCK_E"], H_PAD=c["H_PAD"], DOT_PRECISION=c["DOT_PRECISION"],
            num_warps=c["num_warps"], num_stages=c["num_stages"],
        )
    return h, dh_pre, dg_part.view(B, n_t_tiles, E).sum(dim=1)


def local_backward(x, y, dz, wd, wu, gb, dgs, mask, h, dh_pre):
    """Second backward pass. dgs: (B, E) fp32 = dg / count. Returns dx, dy and dwd, dwu in fp32."""
    B, T, E = x.shape
    H = wd.shape[0]
    N = B * T
    c = kernel_config(E, H, x.dtype)
    dx = torch.empty((B, T, E), device=x.device, dtype=x.dtype)
    dy = torch.empty((B, T, E), device=x.device, dtype=x.dtype)
    n_e = triton.cdiv(E, c["BLOCK_E_DW"])
    n_m = triton.cdiv(N, c["BLOCK_M"])
    splits = max(1, min(n_m, triton.cdiv(2 * _sm_count(x.device), n_e)))
    tokens_per_split = max(1, triton.cdiv(n_m, splits)) * c["BLOCK_M"]
    splits = max(1, triton.cdiv(N, tokens_per_split))
    dwu_part = torch.zeros((splits, E, H), device=x.device, dtype=torch.float32)
    dwd_part = torch.zeros_like(dwu_part)
    if N > 0:
        _wrap(_aif_backward_kernel)[(n_e, splits)](
            x, y, dz, dx, dy, wd, wu, gb, dgs, mask, h, dh_pre, dwu_part, dwd_part,
            N, T, E, H, tokens_per_split,
            *x.stride(), *y.stride(), *dz.stride(), *dx.stride(), *dy.stride(), *wd.stride(), *wu.stride(),
            BLOCK_M=c["BLOCK_M"], BLOCK_E=c["BLOCK_E_DW"], H_PAD=c["H_PAD"], DOT_PRECISION=c["DOT_PRECISION"],
            num_warps=c["num_warps"], num_stages=c["num_stages"],
        )
    return dx, dy, dwd_part.sum(dim=0).t().contiguous(), dwu_part.sum(dim=0)
