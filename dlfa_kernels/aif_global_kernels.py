"""Kernels of the AIF global branch, G = global_up(relu(global_down(g))), forward and backward.

Both are parallel over E chunks (and the forward over blocks of sequences); each program recomputes
the small hidden it needs instead of waiting for another launch. Matrix operands are in the
parameters' dtype (tensor cores for fp16/bf16; fp32 follows ``DOT_PRECISION``), sums in fp32, and g
enters a dot halved (g/2 fits wherever X and Y do, as W/2 does in the local branch).
"""
import triton
import triton.language as tl

from .aif_device import load_cols, relu, token_count


@triton.jit
def _aif_global_forward_kernel(
    G, WGD, BGD, WGU, BGU, BLU, GB_OUT, HG_OUT,
    B, E, H,
    stride_wgdh, stride_wgde, stride_wgue, stride_wguh,
    BLOCK_B: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr, H_PAD: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """gb = global_up(relu(global_down(g))) + local_up.bias on one E chunk of BLOCK_B sequences, and hg.

    grid (cdiv(B, BLOCK_B), cdiv(E, BLOCK_E)). g, gb: (B, E) contiguous fp32; hg = relu(global_down(g)):
    (B, H) fp32, written by the programs of the first E chunk. Every program computes hg for its
    sequences (B·E·H multiply-adds per E chunk, on tensor cores) so no launch waits on another.
    """
    offs_b = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    b_ok = offs_b < B
    offs_h = tl.arange(0, H_PAD)
    h_ok = offs_h < H
    op = WGD.dtype.element_ty
    acc = tl.zeros([BLOCK_B, H_PAD], dtype=tl.float32)
    for k0 in range(0, E, BLOCK_K):
        offs_k = (k0 + tl.arange(0, BLOCK_K)).to(tl.int64)
        k_ok = offs_k < E
        g_half = (load_cols(G, offs_b, b_ok, offs_k, k_ok, E, 1) * 0.5).to(op)
        wgd_t = load_cols(WGD, offs_k, k_ok, offs_h, h_ok, stride_wgde, stride_wgdh)
        acc = tl.dot(g_half, wgd_t, acc, input_precision=DOT_PRECISION)
    hg = relu(2.0 * acc + tl.load(BGD + offs_h, mask=h_ok, other=0.0).to(tl.float32)[None, :])
    if tl.program_id(1) == 0:
        tl.store(HG_OUT + offs_b[:, None] * H + offs_h[None, :], hg, mask=b_ok[:, None] & h_ok[None, :])
    offs_e = (tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    e_ok = offs_e < E
    wgu_t = load_cols(WGU, offs_h, h_ok, offs_e, e_ok, stride_wguh, stride_wgue)
    bias = tl.load(BGU + offs_e, mask=e_ok, other=0.0).to(tl.float32) + \
        tl.load(BLU + offs_e, mask=e_ok, other=0.0).to(tl.float32)
    gb = tl.dot(hg.to(op), wgu_t, input_precision=DOT_PRECISION) + bias[None, :]
    tl.store(GB_OUT + offs_b[:, None] * E + offs_e[None, :], gb, mask=b_ok[:, None] & e_ok[None, :])


@triton.jit
def _aif_global_backward_kernel(
    G, HG, DG_PART, DHG_PART, MASK, WGD, DGS_OUT, D_WGD, D_BGD, D_WGU, D_BGU, D_BLU,
    B, T, E, H, n_t_tiles,
    stride_mb, stride_mt, stride_wgdh, stride_wgde,
    BLOCK_B: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_T: tl.constexpr, H_PAD: tl.constexpr,
    HAS_MASK: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """The global branch backward on one E chunk; grid (cdiv(E, BLOCK_E),).

    From the per-tile partials of the backward_dh kernel, DG_PART: Σ_tile dS (tiles, E) and DHG_PART:
    (Σ_tile dS)·global_up.weight (tiles, H), tile b·n_t_tiles + i of sequence b:
      dG = Σ_i DG_PART,  dhg = (Σ_i DHG_PART) ⊙ [hg > 0]  (every program sums the H-wide rows again),
      dgs = dhg·global_down.weight / max(count, 1) -> DGS_OUT (B, E) fp32,
    and the global parameters' gradients on this chunk, in their own dtype: global_up.weight[chunk] =
    dGᵀ·hg, global_up.bias[chunk] = local_up.bias[chunk] = Σ_b dG, global_down.weight[:, chunk] =
    dhgᵀ·g; program 0 also global_down.bias = Σ_b dhg. Sums over sequences in a fixed order.
    """
    pid = tl.program_id(0)
    offs_e = (pid * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    e_ok = offs_e < E
    offs_h = tl.arange(0, H_PAD)
    h_ok = offs_h < H
    op = WGD.dtype.element_ty
    wgd = load_cols(WGD, offs_h, h_ok, offs_e, e_ok, stride_wgdh, stride_wgde)
    acc_wgu = tl.zeros([BLOCK_E, H_PAD], dtype=tl.float32)
    acc_wgd = tl.zeros([H_PAD, BLOCK_E], dtype=tl.float32)
    db = tl.zeros([BLOCK_E], dtype=tl.float32)
    dbg = tl.zeros([H_PAD], dtype=tl.float32)
    for b0 in range(0, B, BLOCK_B):
        offs_b = (b0 + tl.arange(0, BLOCK_B)).to(tl.int64)
        b_ok = offs_b < B
        d_big_g = tl.zeros([BLOCK_B, BLOCK_E], dtype=tl.float32)
        dhg = tl.zeros([BLOCK_B, H_PAD], dtype=tl.float32)
        for i in range(0, n_t_tiles):
            tiles = offs_b * n_t_tiles + i
            d_big_g += load_cols(DG_PART, tiles, b_ok, offs_e, e_ok, E, 1)
            dhg += load_cols(DHG_PART, tiles, b_ok, offs_h, h_ok, H, 1)
        hg = load_cols(HG, offs_b, b_ok, offs_h, h_ok, H, 1)
        dhg = tl.where(hg <= 0, 0.0, dhg)  # relu's gradient; hg = relu(pre) keeps a NaN, which passes
        inv = 1.0 / token_count(MASK, offs_b, b_ok, T, stride_mb, stride_mt, BLOCK_B, BLOCK_T, HAS_MASK)
        dg = tl.dot(dhg.to(op), wgd, input_precision=DOT_PRECISION)
        tl.store(DGS_OUT + offs_b[:, None] * E + offs_e[None, :], dg * inv[:, None],
                 mask=b_ok[:, None] & e_ok[None, :])
        g_half = (load_cols(G, offs_b, b_ok, offs_e, e_ok, E, 1) * 0.5).to(op)
        acc_wgu = tl.dot(tl.trans(d_big_g.to(op)), hg.to(op), acc_wgu, input_precision=DOT_PRECISION)
        acc_wgd = tl.dot(tl.trans(dhg.to(op)), g_half, acc_wgd, input_precision=DOT_PRECISION)
        db += tl.sum(d_big_g, axis=0)
        dbg += tl.sum(dhg, axis=0)
    ok_eh = e_ok[:, None] & h_ok[None, :]
    tl.store(D_WGU + offs_e[:, None] * H + offs_h[None, :], acc_wgu.to(D_WGU.dtype.element_ty), mask=ok_eh)
    tl.store(D_WGD + offs_h[:, None] * E + offs_e[None, :], (2.0 * acc_wgd).to(D_WGD.dtype.element_ty),
             mask=h_ok[:, None] & e_ok[None, :])
    tl.store(D_BGU + offs_e, db.to(D_BGU.dtype.element_ty), mask=e_ok)
    tl.store(D_BLU + offs_e, db.to(D_BLU.dtype.element_ty), mask=e_ok)
    if pid == 0:
        tl.store(D_BGD + offs_h, dbg.to(D_BGD.dtype.element_ty), mask=h_ok)
