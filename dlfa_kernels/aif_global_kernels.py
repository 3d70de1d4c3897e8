"""The backward of the AIF global branch, G = global_up(relu(global_down(g))), parallel over E chunks.

(Its forward is folded into the pool and forward kernels.) Matrix operands are in the parameters'
dtype (tensor cores for fp16/bf16; fp32 follows ``DOT_PRECISION``), sums in fp32, and g enters a dot
halved (g/2 fits wherever X and Y do, as W/2 does in the local branch).
"""
import triton
import triton.language as tl

from .aif_device import load_cols, token_count


@triton.jit
def _aif_global_backward_kernel(
    G, GLOB, DG_PART, DHG_PART, MASK, WGD, DGS_OUT, D_WGD, D_BGD, D_WGU, D_BGU, D_BLU,
    B, T, E, H, n_t_tiles,
    stride_mb, stride_mt, stride_wgdh, stride_wgde,
    BLOCK_B: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_T: tl.constexpr, H_PAD: tl.constexpr,
    HAS_MASK: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """The global branch backward on one E chunk; grid (cdiv(E, BLOCK_E),).

    hg = relu(global_down(g)) is GLOB[:, E:] (GLOB: (B, E + H) fp32, kept by the forward). From the
    per-tile partials of the backward_dh kernel, DG_PART: Σ_tile dS (tiles, E) and DHG_PART:
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
        hg = load_cols(GLOB + E, offs_b, b_ok, offs_h, h_ok, E + H, 1)
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
