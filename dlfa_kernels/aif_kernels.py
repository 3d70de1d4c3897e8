"""Triton kernels of the AIF fusion and their launchers: the whole op with no torch work between launches.

Shapes: x, y, z: (B, T, E), any strides; N = B·T tokens; H = E / reduction;
mask: (B, T) of any dtype, or None (plain mean over T). Parameters as in ``nn.Linear``:
local_down ``wd``: (H, E), local_up ``wu``: (E, H), global_down (H, E), global_up (E, H).

Forward, 3 launches:
  1. ``_aif_pool_kernel``            g = masked mean of X + Y over T, mask counts in-kernel  (B, E) fp32
  2. ``_aif_global_forward_kernel``  gb = global_up(relu(global_down(g))) + local_up.bias   (B, E) fp32
  3. ``_aif_forward_kernel``         per token tile of one sequence: h = relu(W·wdᵀ + bd) on chip,
                                     M = σ(h·wuᵀ + gb[b]), Z = Y + M ⊙ (X − Y)
Backward, 5 launches:
  1. ``_aif_global_forward_kernel``  gb again, from the saved g
  2. ``_aif_backward_dh_kernel``     per token tile: h, dh_pre = (dS·wu) ⊙ [h > 0] (N, H), and per-tile
                                     column sums of dS (→ dG) and of dh_pre (→ local_down.bias grad)
  3. ``_aif_global_backward_kernel`` dG, the global bottleneck backward, dg / count  (B, E)
  4. ``_aif_backward_kernel``        per (E chunk, token split): dX, dY and the split's fp32 partial
                                     dwu = dSᵀ·h, dwdᵀ = Wᵀ·dh_pre
  5. ``_aif_backward_finalize_kernel`` sums the partials and writes all eight parameter gradients
                                     in the parameter dtype

W = X + Y is never formed in the input dtype: the GEMM operand is W/2 (rounded once, like W, and
within range wherever X and Y are), the product doubled in fp32; the mean and every other use of W
is fp32. The hidden width H is covered by two power-of-two column blocks (192 = 128 + 64) instead
of one padded block.
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


# ----------------------------------------------------------------------------- shared device code

@triton.jit
def _mask_row(MASK, b, offs_t, t_ok, stride_mb, stride_mt, HAS_MASK: tl.constexpr):
    """mask[b, offs_t] as fp32 (0 past T); 1 for every token when there is no mask."""
    if HAS_MASK:
        m = tl.load(MASK + b * stride_mb + offs_t * stride_mt, mask=t_ok, other=0).to(tl.float32)
    else:
        m = tl.where(t_ok, 1.0, 0.0)
    return m


@triton.jit
def _token_count(MASK, offs_b, b_ok, T, stride_mb, stride_mt, BLOCK_B: tl.constexpr, BLOCK_T: tl.constexpr,
                 HAS_MASK: tl.constexpr):
    """max(Σ_t mask[b, t], 1) for a block of sequences: (BLOCK_B,) fp32."""
    if HAS_MASK:
        count = tl.zeros([BLOCK_B], dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            offs_t = (t0 + tl.arange(0, BLOCK_T)).to(tl.int64)
            ok = b_ok[:, None] & (offs_t < T)[None, :]
            m = tl.load(MASK + offs_b[:, None] * stride_mb + offs_t[None, :] * stride_mt, mask=ok, other=0)
            count += tl.sum(m.to(tl.float32), axis=1)
    else:
        count = tl.zeros([BLOCK_B], dtype=tl.float32) + T
    return tl.maximum(count, 1.0)


@triton.jit
def _tile_tokens(tile, tile_t, T, BLOCK_M: tl.constexpr):
    """Token offsets (BLOCK_M,) int64 of tile ``tile`` of a sequence, tile_t tokens a tile, and which are real."""
    rows = tl.arange(0, BLOCK_M)
    offs_t = tile * tile_t + rows.to(tl.int64)
    return offs_t, (rows < tile_t) & (offs_t < T)


@triton.jit
def _relu(v):
    """max(v, 0) with NaN kept, as torch.relu does (relu's gradient mask is then v <= 0 -> 0)."""
    return tl.maximum(v, 0.0, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _load_cols(PTR, offs_r, r_ok, offs_c, c_ok, stride_r, stride_c):
    """A (rows, cols) tile of a 2-D tensor, 0 outside."""
    return tl.load(PTR + offs_r[:, None] * stride_r + offs_c[None, :] * stride_c,
                   mask=r_ok[:, None] & c_ok[None, :], other=0.0)


@triton.jit
def _local_hidden(
    X, Y, WD, BD, b, offs_t, t_ok, E, H,
    stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye, stride_wdh, stride_wde,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, HA: tl.constexpr, HB: tl.constexpr,
    SPLIT_H: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """h = relu(W·wdᵀ + bd) for one token tile in X's dtype, as columns [0, HA) and [HA, HA + HB).

    The second block is all zeros (and unused) unless SPLIT_H.
    """
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    acc_a = tl.zeros([BLOCK_M, HA], dtype=tl.float32)
    acc_b = tl.zeros([BLOCK_M, HB], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        e_ok = offs_e < E
        ok = t_ok[:, None] & e_ok[None, :]
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        # W/2 fits wherever X and Y do (fp16 40000 + 30000 does not); the ×2 below is exact
        w_half = ((x.to(tl.float32) + y.to(tl.float32)) * 0.5).to(x.dtype)
        wd_a = _load_cols(WD, offs_e, e_ok, offs_ha, offs_ha < H, stride_wde, stride_wdh)
        acc_a = tl.dot(w_half, wd_a, acc_a, input_precision=DOT_PRECISION)
        if SPLIT_H:
            wd_b = _load_cols(WD, offs_e, e_ok, offs_hb, offs_hb < H, stride_wde, stride_wdh)
            acc_b = tl.dot(w_half, wd_b, acc_b, input_precision=DOT_PRECISION)
    bd_a = tl.load(BD + offs_ha, mask=offs_ha < H, other=0.0).to(tl.float32)
    h_a = 2.0 * acc_a + bd_a[None, :]
    h_b = acc_b
    if SPLIT_H:
        bd_b = tl.load(BD + offs_hb, mask=offs_hb < H, other=0.0).to(tl.float32)
        h_b = 2.0 * acc_b + bd_b[None, :]
    return _relu(h_a).to(X.dtype.element_ty), _relu(h_b).to(X.dtype.element_ty)


@triton.jit
def _local_up(h_a, h_b, wu_a, wu_b, SPLIT_H: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """h·wuᵀ for one E chunk: h_a (M, HA), wu_a (BLOCK_E, HA) and likewise b -> (M, BLOCK_E) fp32."""
    s = tl.dot(h_a, tl.trans(wu_a), input_precision=DOT_PRECISION)
    if SPLIT_H:
        s = tl.dot(h_b, tl.trans(wu_b), s, input_precision=DOT_PRECISION)
    return s


@triton.jit
def _chunk_gate(
    X, Y, WU, GB, b, offs_t, t_ok, offs_e, e_ok, h_a, h_b, E, H,
    stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye, stride_wue, stride_wuh,
    HA: tl.constexpr, HB: tl.constexpr, SPLIT_H: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """For one E chunk of a token tile: the gate sigmoid(h·wuᵀ + gb[b]) (BLOCK_M, BLOCK_E) fp32, X and
    Y there, the chunk's up-projection blocks wu_a (BLOCK_E, HA), wu_b, and the in-bounds mask."""
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    ok = t_ok[:, None] & e_ok[None, :]
    wu_a = _load_cols(WU, offs_e, e_ok, offs_ha, offs_ha < H, stride_wue, stride_wuh)
    wu_b = _load_cols(WU, offs_e, e_ok, offs_hb, offs_hb < H, stride_wue, stride_wuh)
    gb = tl.load(GB + b * E + offs_e, mask=e_ok, other=0.0)
    gate = tl.sigmoid(_local_up(h_a, h_b, wu_a, wu_b, SPLIT_H, DOT_PRECISION) + gb[None, :])
    x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
    y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
    return gate, x, y, wu_a, wu_b, ok


# ----------------------------------------------------------------------------- forward kernels

@triton.jit
def _aif_pool_kernel(
    X, Y, MASK, G_OUT,
    T, E,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_mb, stride_mt,
    BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr, HAS_MASK: tl.constexpr,
):
    """g[b, e] = Σ_t mask[b,t]·(X+Y)[b,t,e] / max(Σ_t mask[b,t], 1); grid (B, cdiv(E, BLOCK_E))."""
    b = tl.program_id(0).to(tl.int64)
    offs_e = (tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    e_ok = offs_e < E
    acc = tl.zeros([BLOCK_E], dtype=tl.float32)
    count = tl.zeros([BLOCK_T], dtype=tl.float32)
    for t0 in range(0, T, BLOCK_T):
        offs_t = (t0 + tl.arange(0, BLOCK_T)).to(tl.int64)
        t_ok = offs_t < T
        ok = t_ok[:, None] & e_ok[None, :]
        m = _mask_row(MASK, b, offs_t, t_ok, stride_mb, stride_mt, HAS_MASK)
        count += m
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        w = x.to(tl.float32) + y.to(tl.float32)
        # where, not a product: a NaN in a padded position must not reach the mean
        acc += tl.sum(tl.where(m[:, None] != 0, w * m[:, None], 0.0), axis=0)
    inv = 1.0 / tl.maximum(tl.sum(count, axis=0), 1.0)
    tl.store(G_OUT + b * E + offs_e, acc * inv, mask=e_ok)


@triton.jit
def _aif_global_forward_kernel(
    G, WGD, BGD, WGU, BGU, BLU, GB_OUT,
    B, E, H,
    stride_wgdh, stride_wgde, stride_wgue, stride_wguh,
    BLOCK_B: tl.constexpr, BLOCK_E: tl.constexpr, H_PAD: tl.constexpr,
):
    """gb = global_up(relu(global_down(g))) + local_up.bias for BLOCK_B sequences, fp32; grid (cdiv(B, BLOCK_B),).

    Weights are read once per BLOCK_B sequences. g, gb: (B, E) contiguous fp32.
    """
    offs_b = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    b_ok = offs_b < B
    offs_h = tl.arange(0, H_PAD)
    h_ok = offs_h < H
    acc = tl.zeros([BLOCK_B, H_PAD], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        e_ok = offs_e < E
        g = _load_cols(G, offs_b, b_ok, offs_e, e_ok, E, 1)
        wgd_t = _load_cols(WGD, offs_e, e_ok, offs_h, h_ok, stride_wgde, stride_wgdh).to(tl.float32)
        acc = tl.dot(g, wgd_t, acc, input_precision="ieee")
    hg = _relu(acc + tl.load(BGD + offs_h, mask=h_ok, other=0.0).to(tl.float32)[None, :])
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        e_ok = offs_e < E
        wgu_t = _load_cols(WGU, offs_h, h_ok, offs_e, e_ok, stride_wguh, stride_wgue).to(tl.float32)
        bias = tl.load(BGU + offs_e, mask=e_ok, other=0.0).to(tl.float32) + \
            tl.load(BLU + offs_e, mask=e_ok, other=0.0).to(tl.float32)
        gb = tl.dot(hg, wgu_t, input_precision="ieee") + bias[None, :]
        tl.store(GB_OUT + offs_b[:, None] * E + offs_e[None, :], gb, mask=b_ok[:, None] & e_ok[None, :])


@triton.jit
def _aif_forward_kernel(
    X, Y, Z, WD, BD, WU, GB,
    T, E, H, n_t_tiles, tile_t,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_zb, stride_zt, stride_ze,
    stride_wdh, stride_wde, stride_wue, stride_wuh,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, HA: tl.constexpr, HB: tl.constexpr,
    SPLIT_H: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Z for one tile of tile_t ≤ BLOCK_M tokens of one sequence; grid (B · n_t_tiles,)."""
    pid = tl.program_id(0).to(tl.int64)
    b = pid // n_t_tiles
    offs_t, t_ok = _tile_tokens(pid % n_t_tiles, tile_t, T, BLOCK_M)
    h_a, h_b = _local_hidden(X, Y, WD, BD, b, offs_t, t_ok, E, H,
                             stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                             stride_wdh, stride_wde, BLOCK_M, BLOCK_E, HA, HB, SPLIT_H, DOT_PRECISION)
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        gate, x, y, _, _, ok = _chunk_gate(X, Y, WU, GB, b, offs_t, t_ok, offs_e, offs_e < E, h_a, h_b, E, H,
                                           stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                                           stride_wue, stride_wuh, HA, HB, SPLIT_H, DOT_PRECISION)
        y = y.to(tl.float32)
        z = y + gate * (x.to(tl.float32) - y)
        tl.store(Z + b * stride_zb + offs_t[:, None] * stride_zt + offs_e[None, :] * stride_ze,
                 z.to(Z.dtype.element_ty), mask=ok)


# ----------------------------------------------------------------------------- backward kernels

@triton.jit
def _aif_backward_dh_kernel(
    X, Y, DZ, WD, BD, WU, GB, H_OUT, DH_OUT, DG_PART, DBD_PART,
    T, E, H, n_t_tiles, tile_t,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_dzb, stride_dzt, stride_dze,
    stride_wdh, stride_wde, stride_wue, stride_wuh,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, HA: tl.constexpr, HB: tl.constexpr,
    SPLIT_H: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """For one token tile (tile_t ≤ BLOCK_M tokens of one sequence): h, dh_pre (N, H); Σ_tile dS (B·n_t_tiles, E); Σ_tile dh_pre (B·n_t_tiles, H).

    grid (B · n_t_tiles,); tile = pid.
    """
    pid = tl.program_id(0).to(tl.int64)
    b = pid // n_t_tiles
    offs_t, t_ok = _tile_tokens(pid % n_t_tiles, tile_t, T, BLOCK_M)
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    h_a, h_b = _local_hidden(X, Y, WD, BD, b, offs_t, t_ok, E, H,
                             stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                             stride_wdh, stride_wde, BLOCK_M, BLOCK_E, HA, HB, SPLIT_H, DOT_PRECISION)
    dh_a = tl.zeros([BLOCK_M, HA], dtype=tl.float32)
    dh_b = tl.zeros([BLOCK_M, HB], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        e_ok = offs_e < E
        gate, x, y, wu_a, wu_b, ok = _chunk_gate(X, Y, WU, GB, b, offs_t, t_ok, offs_e, e_ok, h_a, h_b, E, H,
                                                 stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                                                 stride_wue, stride_wuh, HA, HB, SPLIT_H, DOT_PRECISION)
        dz = tl.load(DZ + b * stride_dzb + offs_t[:, None] * stride_dzt + offs_e[None, :] * stride_dze,
                     mask=ok, other=0.0)
        ds = dz.to(tl.float32) * (x.to(tl.float32) - y.to(tl.float32)) * gate * (1.0 - gate)
        ds = tl.where(ok, ds, 0.0)
        tl.store(DG_PART + pid * E + offs_e, tl.sum(ds, axis=0), mask=e_ok)
        ds = ds.to(X.dtype.element_ty)
        dh_a = tl.dot(ds, wu_a, dh_a, input_precision=DOT_PRECISION)
        if SPLIT_H:
            dh_b = tl.dot(ds, wu_b, dh_b, input_precision=DOT_PRECISION)
    rows = b * T + offs_t
    dh_a = tl.where(h_a <= 0, 0.0, dh_a)
    ok_a = t_ok[:, None] & (offs_ha < H)[None, :]
    tl.store(H_OUT + rows[:, None] * H + offs_ha[None, :], h_a, mask=ok_a)
    tl.store(DH_OUT + rows[:, None] * H + offs_ha[None, :], dh_a.to(DH_OUT.dtype.element_ty), mask=ok_a)
    tl.store(DBD_PART + pid * H + offs_ha, tl.sum(dh_a, axis=0), mask=offs_ha < H)
    if SPLIT_H:
        dh_b = tl.where(h_b <= 0, 0.0, dh_b)
        ok_b = t_ok[:, None] & (offs_hb < H)[None, :]
        tl.store(H_OUT + rows[:, None] * H + offs_hb[None, :], h_b, mask=ok_b)
        tl.store(DH_OUT + rows[:, None] * H + offs_hb[None, :], dh_b.to(DH_OUT.dtype.element_ty), mask=ok_b)
        tl.store(DBD_PART + pid * H + offs_hb, tl.sum(dh_b, axis=0), mask=offs_hb < H)


@triton.jit
def _aif_global_backward_kernel(
    G, DG_PART, MASK, WGD, BGD, WGU, DG_SUM, HG_OUT, DHG_OUT, DGS_OUT,
    B, T, E, H, n_t_tiles,
    stride_mb, stride_mt, stride_wgdh, stride_wgde, stride_wgue, stride_wguh,
    BLOCK_B: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_T: tl.constexpr, H_PAD: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    """Global branch backward for BLOCK_B sequences; grid (cdiv(B, BLOCK_B),).

    dG = Σ over the sequence's tiles of DG_PART -> DG_SUM (B, E); hg, dhg -> (B, H);
    dgs = dg / max(count, 1) -> (B, E), with dg = dhg·global_down.weight. All fp32.
    """
    offs_b = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    b_ok = offs_b < B
    offs_h = tl.arange(0, H_PAD)
    h_ok = offs_h < H
    acc_h = tl.zeros([BLOCK_B, H_PAD], dtype=tl.float32)
    acc_dh = tl.zeros([BLOCK_B, H_PAD], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        e_ok = offs_e < E
        ok = b_ok[:, None] & e_ok[None, :]
        g = _load_cols(G, offs_b, b_ok, offs_e, e_ok, E, 1)
        wgd_t = _load_cols(WGD, offs_e, e_ok, offs_h, h_ok, stride_wgde, stride_wgdh).to(tl.float32)
        acc_h = tl.dot(g, wgd_t, acc_h, input_precision="ieee")
        d_big_g = tl.zeros([BLOCK_B, BLOCK_E], dtype=tl.float32)
        for i in range(0, n_t_tiles):
            d_big_g += tl.load(DG_PART + (offs_b[:, None] * n_t_tiles + i) * E + offs_e[None, :], mask=ok, other=0.0)
        tl.store(DG_SUM + offs_b[:, None] * E + offs_e[None, :], d_big_g, mask=ok)
        wgu = _load_cols(WGU, offs_e, e_ok, offs_h, h_ok, stride_wgue, stride_wguh).to(tl.float32)
        acc_dh = tl.dot(d_big_g, wgu, acc_dh, input_precision="ieee")
    hg_pre = acc_h + tl.load(BGD + offs_h, mask=h_ok, other=0.0).to(tl.float32)[None, :]
    dhg = tl.where(hg_pre <= 0, 0.0, acc_dh)
    ok_h = b_ok[:, None] & h_ok[None, :]
    tl.store(HG_OUT + offs_b[:, None] * H + offs_h[None, :], _relu(hg_pre), mask=ok_h)
    tl.store(DHG_OUT + offs_b[:, None] * H + offs_h[None, :], dhg, mask=ok_h)
    inv = 1.0 / _token_count(MASK, offs_b, b_ok, T, stride_mb, stride_mt, BLOCK_B, BLOCK_T, HAS_MASK)
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        e_ok = offs_e < E
        wgd = _load_cols(WGD, offs_h, h_ok, offs_e, e_ok, stride_wgdh, stride_wgde).to(tl.float32)
        dg = tl.dot(dhg, wgd, input_precision="ieee")
        tl.store(DGS_OUT + offs_b[:, None] * E + offs_e[None, :], dg * inv[:, None],
                 mask=b_ok[:, None] & e_ok[None, :])


@triton.jit
def _aif_backward_kernel(
    X, Y, DZ, DX, DY, WD, WU, GB, DGS, MASK, H_BUF, DH_BUF, DWU_PART, DWD_PART,
    T, E, H, n_t_tiles, n_tiles, tiles_per_split,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_dzb, stride_dzt, stride_dze,
    stride_dxb, stride_dxt, stride_dxe,
    stride_dyb, stride_dyt, stride_dye,
    stride_mb, stride_mt,
    stride_wdh, stride_wde, stride_wue, stride_wuh,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, HA: tl.constexpr, HB: tl.constexpr,
    SPLIT_H: tl.constexpr, HAS_MASK: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """dX, dY on one E chunk for a split's token tiles, and the split's partial dwu, dwdᵀ rows.

    grid (cdiv(E, BLOCK_E), n_splits); a split is tiles_per_split consecutive tiles of BLOCK_M
    tokens, each inside one sequence. dW = dh_pre·wd + dgs[b]·mask[b, t] (dgs = dg / count);
    dX = dZ⊙M + dW, dY = dZ⊙(1−M) + dW. Partials: (n_splits, E, H) fp32, every element written.
    """
    offs_e = (tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    split = tl.program_id(1).to(tl.int64)
    e_ok = offs_e < E
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    ha_ok = offs_ha < H
    hb_ok = offs_hb < H
    wu_a = _load_cols(WU, offs_e, e_ok, offs_ha, ha_ok, stride_wue, stride_wuh)
    wu_b = _load_cols(WU, offs_e, e_ok, offs_hb, hb_ok, stride_wue, stride_wuh)
    wd_a = _load_cols(WD, offs_ha, ha_ok, offs_e, e_ok, stride_wdh, stride_wde)
    wd_b = _load_cols(WD, offs_hb, hb_ok, offs_e, e_ok, stride_wdh, stride_wde)
    acc_wu_a = tl.zeros([HA, BLOCK_E], dtype=tl.float32)  # transposed: H rows fill a wgmma's M
    acc_wu_b = tl.zeros([HB, BLOCK_E], dtype=tl.float32)
    acc_wd_a = tl.zeros([HA, BLOCK_E], dtype=tl.float32)
    acc_wd_b = tl.zeros([HB, BLOCK_E], dtype=tl.float32)
    first = split * tiles_per_split
    last = tl.minimum(first + tiles_per_split, n_tiles)
    for tile in range(first, last):
        b = tile // n_t_tiles
        offs_t = (tile % n_t_tiles) * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
        t_ok = offs_t < T
        ok = t_ok[:, None] & e_ok[None, :]
        rows = b * T + offs_t
        h_a = _load_cols(H_BUF, rows, t_ok, offs_ha, ha_ok, H, 1)
        dh_a = _load_cols(DH_BUF, rows, t_ok, offs_ha, ha_ok, H, 1)
        h_b = _load_cols(H_BUF, rows, t_ok, offs_hb, hb_ok, H, 1)
        dh_b = _load_cols(DH_BUF, rows, t_ok, offs_hb, hb_ok, H, 1)
        gb = tl.load(GB + b * E + offs_e, mask=e_ok, other=0.0)
        dgs = tl.load(DGS + b * E + offs_e, mask=e_ok, other=0.0)
        m = _mask_row(MASK, b, offs_t, t_ok, stride_mb, stride_mt, HAS_MASK)
        gate = tl.sigmoid(_local_up(h_a, h_b, wu_a, wu_b, SPLIT_H, DOT_PRECISION) + gb[None, :])
        dw = tl.dot(dh_a, wd_a, input_precision=DOT_PRECISION)
        if SPLIT_H:
            dw = tl.dot(dh_b, wd_b, dw, input_precision=DOT_PRECISION)
        dw += m[:, None] * dgs[None, :]
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        dz = tl.load(DZ + b * stride_dzb + offs_t[:, None] * stride_dzt + offs_e[None, :] * stride_dze,
                     mask=ok, other=0.0).to(tl.float32)
        tl.store(DX + b * stride_dxb + offs_t[:, None] * stride_dxt + offs_e[None, :] * stride_dxe,
                 (dz * gate + dw).to(DX.dtype.element_ty), mask=ok)
        tl.store(DY + b * stride_dyb + offs_t[:, None] * stride_dyt + offs_e[None, :] * stride_dye,
                 (dz * (1.0 - gate) + dw).to(DY.dtype.element_ty), mask=ok)
        xf = x.to(tl.float32)
        yf = y.to(tl.float32)
        ds = tl.where(ok, dz * (xf - yf) * gate * (1.0 - gate), 0.0).to(x.dtype)
        w_half = ((xf + yf) * 0.5).to(x.dtype)
        acc_wu_a = tl.dot(tl.trans(h_a), ds, acc_wu_a, input_precision=DOT_PRECISION)
        acc_wd_a = tl.dot(tl.trans(dh_a), w_half, acc_wd_a, input_precision=DOT_PRECISION)
        if SPLIT_H:
            acc_wu_b = tl.dot(tl.trans(h_b), ds, acc_wu_b, input_precision=DOT_PRECISION)
            acc_wd_b = tl.dot(tl.trans(dh_b), w_half, acc_wd_b, input_precision=DOT_PRECISION)
    base = split * E * H + offs_e[None, :] * H
    ok_a = ha_ok[:, None] & e_ok[None, :]
    tl.store(DWU_PART + base + offs_ha[:, None], acc_wu_a, mask=ok_a)
    tl.store(DWD_PART + base + offs_ha[:, None], 2.0 * acc_wd_a, mask=ok_a)
    if SPLIT_H:
        ok_b = hb_ok[:, None] & e_ok[None, :]
        tl.store(DWU_PART + base + offs_hb[:, None], acc_wu_b, mask=ok_b)
        tl.store(DWD_PART + base + offs_hb[:, None], 2.0 * acc_wd_b, mask=ok_b)


@triton.jit
def _aif_backward_finalize_kernel(
    DWU_PART, DWD_PART, DBD_PART, DG_SUM, HG, DHG, G,
    D_WLD, D_BLD, D_WLU, D_BLU, D_WGD, D_BGD, D_WGU, D_BGU,
    B, E, H, n_splits, n_tiles,
    BLOCK_E: tl.constexpr, BLOCK_B: tl.constexpr, H_PAD: tl.constexpr,
):
    """All eight parameter gradients, each written once in its own dtype; grid (cdiv(E, BLOCK_E),).

    Program p owns columns e of every E-indexed gradient; program 0 also the two H-long biases.
    Weight gradients (H, E) / (E, H) contiguous. Sums run in a fixed order: deterministic.
    """
    pid = tl.program_id(0)
    offs_e = (pid * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    e_ok = offs_e < E
    offs_h = tl.arange(0, H_PAD)
    h_ok = offs_h < H
    ok_eh = e_ok[:, None] & h_ok[None, :]
    part = offs_e[:, None] * H + offs_h[None, :]
    acc = tl.zeros([BLOCK_E, H_PAD], dtype=tl.float32)
    for s in range(0, n_splits):
        acc += tl.load(DWU_PART + s * E * H + part, mask=ok_eh, other=0.0)
    tl.store(D_WLU + part, acc.to(D_WLU.dtype.element_ty), mask=ok_eh)
    acc = tl.zeros([BLOCK_E, H_PAD], dtype=tl.float32)
    for s in range(0, n_splits):
        acc += tl.load(DWD_PART + s * E * H + part, mask=ok_eh, other=0.0)
    tl.store(D_WLD + offs_h[None, :] * E + offs_e[:, None], acc.to(D_WLD.dtype.element_ty), mask=ok_eh)
    # global_up: dW = dGᵀ·hg, db = Σ_b dG (= local_up's bias gradient too)
    acc = tl.zeros([BLOCK_E, H_PAD], dtype=tl.float32)
    db = tl.zeros([BLOCK_E], dtype=tl.float32)
    for b0 in range(0, B, BLOCK_B):
        offs_b = (b0 + tl.arange(0, BLOCK_B)).to(tl.int64)
        b_ok = offs_b < B
        d_big_g = _load_cols(DG_SUM, offs_b, b_ok, offs_e, e_ok, E, 1)
        acc = tl.dot(tl.trans(d_big_g), _load_cols(HG, offs_b, b_ok, offs_h, h_ok, H, 1), acc,
                     input_precision="ieee")
        db += tl.sum(d_big_g, axis=0)
    tl.store(D_WGU + part, acc.to(D_WGU.dtype.element_ty), mask=ok_eh)
    # global_down: dW = dhgᵀ·g
    acc_t = tl.zeros([H_PAD, BLOCK_E], dtype=tl.float32)
    for b0 in range(0, B, BLOCK_B):
        offs_b = (b0 + tl.arange(0, BLOCK_B)).to(tl.int64)
        b_ok = offs_b < B
        acc_t = tl.dot(tl.trans(_load_cols(DHG, offs_b, b_ok, offs_h, h_ok, H, 1)),
                       _load_cols(G, offs_b, b_ok, offs_e, e_ok, E, 1), acc_t, input_precision="ieee")
    tl.store(D_WGD + offs_h[:, None] * E + offs_e[None, :], acc_t.to(D_WGD.dtype.element_ty),
             mask=h_ok[:, None] & e_ok[None, :])
    tl.store(D_BGU + offs_e, db.to(D_BGU.dtype.element_ty), mask=e_ok)
    tl.store(D_BLU + offs_e, db.to(D_BLU.dtype.element_ty), mask=e_ok)
    if pid == 0:
        dbd = tl.zeros([H_PAD], dtype=tl.float32)
        for i in range(0, n_tiles):
            dbd += tl.load(DBD_PART + i * H + offs_h, mask=h_ok, other=0.0)
        tl.store(D_BLD + offs_h, dbd.to(D_BLD.dtype.element_ty), mask=h_ok)
        dbg = tl.zeros([H_PAD], dtype=tl.float32)
        for b0 in range(0, B, BLOCK_B):
            offs_b = (b0 + tl.arange(0, BLOCK_B)).to(tl.int64)
            dbg += tl.sum(_load_cols(DHG, offs_b, offs_b < B, offs_h, h_ok, H, 1), axis=0)
        tl.store(D_BGD + offs_h, dbg.to(D_BGD.dtype.element_ty), mask=h_ok)


# ----------------------------------------------------------------------------- launch configuration

def hidden_blocks(H: int) -> tuple[int, int]:
    """Two power-of-two column blocks covering H (HA, HB), HB = 0 when one block is as small.

    192 -> (128, 64), 96 -> (64, 32), 256 -> (256, 0), 10 -> (16, 0).
    """
    full = max(16, triton.next_power_of_2(H))
    first = max(16, full // 2)
    if H <= first:
        return full, 0
    second = max(16, triton.next_power_of_2(H - first))
    return (first, second) if first + second < full else (full, 0)


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 dots follow torch's matmul setting, as nn.Linear does ("ieee" unless tf32 is allowed)."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def token_tiles(B: int, T: int, n_sm: int, most: int) -> tuple[int, int, int]:
    """(tiles per sequence, tokens per tile, rows per tile) of a token-tiled kernel.

    As few tiles as give every SM a program (B · tiles ≥ n_sm) and no tile over ``most`` rows: each
    tile re-reads both E×H weights, so fewer tiles mean less traffic. Tiles stay inside one sequence;
    a tile of 26 tokens computes 32 rows (rows: a power of two, at least 16).
    """
    if T == 0:
        return 0, 1, 16
    tiles = min(max(triton.cdiv(T, most), triton.cdiv(n_sm, max(B, 1))), triton.cdiv(T, 16))
    tile_t = triton.cdiv(T, tiles)
    tiles = triton.cdiv(T, tile_t)
    return tiles, tile_t, max(16, triton.next_power_of_2(tile_t))


def launch_config(B: int, T: int, E: int, H: int, dtype: torch.dtype, n_sm: int, hopper: bool = True) -> dict:
    """Tile sizes, grids and options of every launch of one forward and one backward.

    Keyed on E, H and dtype, and on B·T only through the token-tile height (three values) and
    the number of token splits of the weight-gradient kernel (one wave of ``n_sm`` programs).
    ``hopper``: sm_90 or later, whose wgmma keeps dot operands in shared memory; before it the
    weight-gradient kernel takes narrower E chunks to stay within 255 registers. Every choice
    here is checked spill-free by tests/aot_compile.py.
    """
    half = dtype != torch.float32
    ha, hb = hidden_blocks(H)
    h_pad = max(16, triton.next_power_of_2(H))
    wide = ha + hb >= 192
    # the most rows a compiled forward holds in 255 registers (fp32 dots run on FMA units)
    n_t, tile_t, rows = token_tiles(B, T, n_sm, 64 if half and hopper else 32 if half or wide else 16)
    # h_pre, h and dh of 64 rows do not fit in registers; nor of 32 rows with 96 = 64 + 32 columns
    dh_n_t, dh_tile_t, dh_rows = token_tiles(B, T, n_sm, 32 if ha + hb >= 192 else 16)
    block_e = 64 if half and ha + hb >= 64 else 32
    tile = {
        "BLOCK_M": rows, "BLOCK_E": block_e, "HA": ha, "HB": max(hb, 16), "SPLIT_H": hb > 0,
        "DOT_PRECISION": dot_precision(dtype), "num_warps": 8 if wide else 4,
        "num_stages": 2 if half else 1,
    }
    dw_rows = min(32 if half else 16, max(16, triton.next_power_of_2(max(T, 1))))
    dw_n_t = triton.cdiv(T, dw_rows)
    dw_tiles = B * dw_n_t
    # fp32 "ieee" dots run on FMA units, operands in registers
    dw_block_e = (64 if hopper else 32) if half else 16
    n_e = triton.cdiv(E, dw_block_e)
    splits = min(dw_tiles, max(1, n_sm // n_e))
    per_split = triton.cdiv(dw_tiles, splits) if splits else 0
    splits = triton.cdiv(dw_tiles, per_split) if per_split else 0
    small = {"BLOCK_B": 16, "BLOCK_E": 16, "H_PAD": h_pad, "num_warps": 8}
    return {
        "pool": {"grid": (B, triton.cdiv(E, 64)), "BLOCK_T": 32, "BLOCK_E": 64, "num_warps": 4},
        "global_forward": dict(small, grid=(triton.cdiv(B, 16),)),
        "forward": dict(tile, BLOCK_M=rows, grid=(B * n_t,), n_t_tiles=n_t, tile_t=tile_t),
        "backward_dh": dict(tile, BLOCK_M=dh_rows, num_warps=8 if wide or (half and ha + hb >= 96) else 4,
                            grid=(B * dh_n_t,),
                            n_t_tiles=dh_n_t, tile_t=dh_tile_t),
        "global_backward": dict(small, grid=(triton.cdiv(B, 16),), BLOCK_T=32, num_warps=8 if half else 4),
        "backward": dict(tile, BLOCK_M=dw_rows, BLOCK_E=dw_block_e, num_warps=8,
                         num_stages=tile["num_stages"] if hopper else 1, grid=(n_e, splits),
                         n_t_tiles=dw_n_t, n_tiles=dw_tiles, tiles_per_split=per_split),
        "finalize": {"grid": (triton.cdiv(E, 16),), "BLOCK_E": 16, "BLOCK_B": 16, "H_PAD": h_pad, "num_warps": 4},
    }


CONSTEXPRS = {  # the constexpr arguments each kernel takes from its launch_config entry
    "pool": ("BLOCK_T", "BLOCK_E"),
    "global_forward": ("BLOCK_B", "BLOCK_E", "H_PAD"),
    "forward": ("BLOCK_M", "BLOCK_E", "HA", "HB", "SPLIT_H", "DOT_PRECISION"),
    "backward_dh": ("BLOCK_M", "BLOCK_E", "HA", "HB", "SPLIT_H", "DOT_PRECISION"),
    "global_backward": ("BLOCK_B", "BLOCK_E", "BLOCK_T", "H_PAD"),
    "backward": ("BLOCK_M", "BLOCK_E", "HA", "HB", "SPLIT_H", "DOT_PRECISION"),
    "finalize": ("BLOCK_E", "BLOCK_B", "H_PAD"),
}
KERNELS = {
    "pool": _aif_pool_kernel, "global_forward": _aif_global_forward_kernel, "forward": _aif_forward_kernel,
    "backward_dh": _aif_backward_dh_kernel, "global_backward": _aif_global_backward_kernel,
    "backward": _aif_backward_kernel, "finalize": _aif_backward_finalize_kernel,
}


def _device_traits(device: torch.device) -> tuple[int, bool]:
    """(number of SMs, sm_90 or later) of the device the kernels run on."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return props.multi_processor_count, props.major >= 9
    return 4, True  # the interpreter runs programs one after another: few, large ones


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

def _gate_bias(g, params, cfg):
    """gb = G + local_up.bias: (B, E) fp32 from g: (B, E) fp32. One launch."""
    _, _, _, blu, wgd, bgd, wgu, bgu = params
    B, E = g.shape
    gb = torch.empty((B, E), device=g.device, dtype=torch.float32)
    _launch("global_forward", cfg, g, wgd, bgd, wgu, bgu, blu, gb, B, E, wgd.shape[0], *wgd.stride(), *wgu.stride())
    return gb


def aif_forward(x, y, mask, params):
    """z: (B, T, E) in x's dtype and g: (B, E) fp32, the masked mean of X + Y. At most 3 launches.

    mask: (B, T) of any dtype (nonzero = token) or None; params: the eight AIF parameters.
    """
    wld, bld, wlu = params[:3]
    B, T, E = x.shape
    H = wld.shape[0]
    z = torch.empty((B, T, E), device=x.device, dtype=x.dtype)
    g = torch.empty((B, E), device=x.device, dtype=torch.float32)
    if B == 0:
        return z, g
    cfg = launch_config(B, T, E, H, x.dtype, *_device_traits(x.device))
    m, smb, smt, has_mask = _mask_args(mask, x)
    _launch("pool", cfg, x, y, m, g, T, E, *x.stride(), *y.stride(), smb, smt, HAS_MASK=has_mask)
    gb = _gate_bias(g, params, cfg)
    if T > 0:
        _launch("forward", cfg, x, y, z, wld, bld, wlu, gb, T, E, H, cfg["forward"]["n_t_tiles"], cfg["forward"]["tile_t"],
                *x.stride(), *y.stride(), *z.stride(), *wld.stride(), *wlu.stride())
    return z, g


def aif_backward(dz, x, y, mask, params, g):
    """[dx, dy, then the gradient of each parameter in its own dtype]. At most 5 launches.

    dz, x, y: (B, T, E); g: (B, E) fp32 saved by :func:`aif_forward`.
    """
    wld, bld, wlu, _, wgd, _, wgu, _ = params
    B, T, E = x.shape
    H = wld.shape[0]
    dev = x.device
    f32 = torch.float32
    cfg = launch_config(B, T, E, H, x.dtype, *_device_traits(dev))
    dx = torch.empty((B, T, E), device=dev, dtype=x.dtype)
    dy = torch.empty((B, T, E), device=dev, dtype=y.dtype)
    grads = [torch.empty(p.shape, device=dev, dtype=p.dtype) for p in params]
    m, smb, smt, has_mask = _mask_args(mask, x)
    n_t, n_tiles, tile_t = cfg["backward_dh"]["n_t_tiles"], cfg["backward_dh"]["grid"][0], cfg["backward_dh"]["tile_t"]
    dw = cfg["backward"]
    n_splits = dw["grid"][1]
    dg_sum = torch.empty((B, E), device=dev, dtype=f32)
    hg = torch.empty((B, H), device=dev, dtype=f32)
    dhg = torch.empty((B, H), device=dev, dtype=f32)
    dbd_part = torch.empty((n_tiles, H), device=dev, dtype=f32)
    dwu_part = torch.empty((n_splits, E, H), device=dev, dtype=f32)
    dwd_part = torch.empty((n_splits, E, H), device=dev, dtype=f32)
    if B > 0:
        gb = _gate_bias(g, params, cfg)
        h = torch.empty((B * T, H), device=dev, dtype=x.dtype)
        dh_pre = torch.empty((B * T, H), device=dev, dtype=x.dtype)
        dg_part = torch.empty((n_tiles, E), device=dev, dtype=f32)
        if n_tiles > 0:
            _launch("backward_dh", cfg, x, y, dz, wld, bld, wlu, gb, h, dh_pre, dg_part, dbd_part, T, E, H, n_t, tile_t,
                    *x.stride(), *y.stride(), *dz.stride(), *wld.stride(), *wlu.stride())
        dgs = torch.empty((B, E), device=dev, dtype=f32)
        _launch("global_backward", cfg, g, dg_part, m, wgd, params[5], wgu, dg_sum, hg, dhg, dgs,
                B, T, E, H, n_t, smb, smt, *wgd.stride(), *wgu.stride(), HAS_MASK=has_mask)
        if n_splits > 0:
            _launch("backward", cfg, x, y, dz, dx, dy, wld, wlu, gb, dgs, m, h, dh_pre, dwu_part, dwd_part,
                    T, E, H, dw["n_t_tiles"], dw["n_tiles"], dw["tiles_per_split"],
                    *x.stride(), *y.stride(), *dz.stride(), *dx.stride(), *dy.stride(), smb, smt,
                    *wld.stride(), *wlu.stride(), HAS_MASK=has_mask)
    _launch("finalize", cfg, dwu_part, dwd_part, dbd_part, dg_sum, hg, dhg, g, *grads, B, E, H, n_splits, n_tiles)
    return [dx, dy] + grads
