"""Backward kernels of the AIF fusion: per token tile dh and the tile's partial sums, per (E chunk,
token split) dX, dY and the local weight-gradient partials, and per E chunk every parameter gradient."""
import triton
import triton.language as tl

from .aif_device import chunk_gate, load_cols, local_up, mask_row, tile_tokens


@triton.jit
def _aif_backward_dh_kernel(
    X, Y, DZ, MASK, H_BUF, WU, GLOB, WGU, DH_OUT, DG_PART, DBD_PART, DHG_PART, COUNT_PART,
    T, E, H, n_t_tiles, tile_t,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_dzb, stride_dzt, stride_dze,
    stride_mb, stride_mt, stride_wue, stride_wuh, stride_wgue, stride_wguh,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, HA: tl.constexpr, HB: tl.constexpr,
    SPLIT_H: tl.constexpr, HAS_MASK: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """For one token tile (tile_t ≤ BLOCK_M tokens of one sequence), from the forward's h (N, H) and gb
    (GLOB (B, E + H) fp32, gb first): dh_pre = (dS·wu) ⊙ [h > 0] (N, H) in X's dtype, and the tile's
    fp32 partials Σ_tile dS (tiles, E), Σ_tile dh_pre (tiles, H), (Σ_tile dS)·global_up.weight (tiles, H)
    and its count of real tokens (tiles,).

    grid (B · n_t_tiles,); tile = pid.
    """
    pid = tl.program_id(0).to(tl.int64)
    b = pid // n_t_tiles
    offs_t, t_ok = tile_tokens(pid % n_t_tiles, tile_t, T, BLOCK_M)
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    rows = b * T + offs_t
    h_a = load_cols(H_BUF, rows, t_ok, offs_ha, offs_ha < H, H, 1)
    h_b = load_cols(H_BUF, rows, t_ok, offs_hb, offs_hb < H, H, 1)
    tl.store(COUNT_PART + pid, tl.sum(mask_row(MASK, b, offs_t, t_ok, stride_mb, stride_mt, HAS_MASK), axis=0))
    dh_a = tl.zeros([BLOCK_M, HA], dtype=tl.float32)
    dh_b = tl.zeros([BLOCK_M, HB], dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        e_ok = offs_e < E
        gb = tl.load(GLOB + b * (E + H) + offs_e, mask=e_ok, other=0.0)
        gate, x, y, wu_a, wu_b, ok = chunk_gate(X, Y, WU, gb, b, offs_t, t_ok, offs_e, e_ok, h_a, h_b, H,
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
    dh_a = tl.where(h_a <= 0, 0.0, dh_a)
    ok_a = t_ok[:, None] & (offs_ha < H)[None, :]
    tl.store(DH_OUT + rows[:, None] * H + offs_ha[None, :], dh_a.to(DH_OUT.dtype.element_ty), mask=ok_a)
    tl.store(DBD_PART + pid * H + offs_ha, tl.sum(dh_a, axis=0), mask=offs_ha < H)
    if SPLIT_H:
        dh_b = tl.where(h_b <= 0, 0.0, dh_b)
        ok_b = t_ok[:, None] & (offs_hb < H)[None, :]
        tl.store(DH_OUT + rows[:, None] * H + offs_hb[None, :], dh_b.to(DH_OUT.dtype.element_ty), mask=ok_b)
        tl.store(DBD_PART + pid * H + offs_hb, tl.sum(dh_b, axis=0), mask=offs_hb < H)
    # the global branch's (Σ_tile dS)·global_up.weight, a vector-matrix product on the row just written
    tl.debug_barrier()  # makes this program's DG_PART row visible to all its threads
    dhg_a = tl.zeros([HA], dtype=tl.float32)
    dhg_b = tl.zeros([HB], dtype=tl.float32)
    for e0 in range(0, E, 16):  # 16 rows of global_up at a time: few registers
        offs_e = (e0 + tl.arange(0, 16)).to(tl.int64)
        e_ok = offs_e < E
        d_big_g = tl.load(DG_PART + pid * E + offs_e, mask=e_ok, other=0.0)
        wgu_a = load_cols(WGU, offs_e, e_ok, offs_ha, offs_ha < H, stride_wgue, stride_wguh).to(tl.float32)
        dhg_a += tl.sum(d_big_g[:, None] * wgu_a, axis=0)
        if SPLIT_H:
            wgu_b = load_cols(WGU, offs_e, e_ok, offs_hb, offs_hb < H, stride_wgue, stride_wguh).to(tl.float32)
            dhg_b += tl.sum(d_big_g[:, None] * wgu_b, axis=0)
    tl.store(DHG_PART + pid * H + offs_ha, dhg_a, mask=offs_ha < H)
    if SPLIT_H:
        tl.store(DHG_PART + pid * H + offs_hb, dhg_b, mask=offs_hb < H)


@triton.jit
def _aif_backward_kernel(
    X, Y, DZ, DX, DY, WD, WU, WGD, GLOB, DHG_PART, COUNT_PART, MASK, H_BUF, DH_BUF, DWU_PART, DWD_PART,
    T, E, H, n_t_tiles, n_tiles, tiles_per_split, n_dh_tiles,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_dzb, stride_dzt, stride_dze,
    stride_dxb, stride_dxt, stride_dxe,
    stride_dyb, stride_dyt, stride_dye,
    stride_mb, stride_mt,
    stride_wdh, stride_wde, stride_wue, stride_wuh, stride_wgdh, stride_wgde,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, HA: tl.constexpr, HB: tl.constexpr,
    SPLIT_H: tl.constexpr, HAS_MASK: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """dX, dY on one E chunk for a split's token tiles, and the split's partial dwu, dwdᵀ rows.

    grid (cdiv(E, BLOCK_E), n_splits); a split is tiles_per_split consecutive tiles of BLOCK_M
    tokens, each inside one sequence. dW = dh_pre·wd + (mask[b, t] / count[b]) dhg[b]·global_down.weight,
    both on tensor cores, with dhg = (Σ DHG_PART over the sequence's n_dh_tiles backward_dh tiles) ⊙
    [hg > 0] and count from COUNT_PART likewise; dX = dZ⊙M + dW, dY = dZ⊙(1−M) + dW.
    Partials: (n_splits, E, H) fp32, every element written.
    """
    offs_e = (tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    split = tl.program_id(1).to(tl.int64)
    e_ok = offs_e < E
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    ha_ok = offs_ha < H
    hb_ok = offs_hb < H
    wu_a = load_cols(WU, offs_e, e_ok, offs_ha, ha_ok, stride_wue, stride_wuh)
    wu_b = load_cols(WU, offs_e, e_ok, offs_hb, hb_ok, stride_wue, stride_wuh)
    wd_a = load_cols(WD, offs_ha, ha_ok, offs_e, e_ok, stride_wdh, stride_wde)
    wd_b = load_cols(WD, offs_hb, hb_ok, offs_e, e_ok, stride_wdh, stride_wde)
    wgd_a = load_cols(WGD, offs_ha, ha_ok, offs_e, e_ok, stride_wgdh, stride_wgde)
    wgd_b = load_cols(WGD, offs_hb, hb_ok, offs_e, e_ok, stride_wgdh, stride_wgde)
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
        h_a = load_cols(H_BUF, rows, t_ok, offs_ha, ha_ok, H, 1)
        dh_a = load_cols(DH_BUF, rows, t_ok, offs_ha, ha_ok, H, 1)
        h_b = load_cols(H_BUF, rows, t_ok, offs_hb, hb_ok, H, 1)
        dh_b = load_cols(DH_BUF, rows, t_ok, offs_hb, hb_ok, H, 1)
        gb = tl.load(GLOB + b * (E + H) + offs_e, mask=e_ok, other=0.0)
        gate = tl.sigmoid(local_up(h_a, h_b, wu_a, wu_b, SPLIT_H, DOT_PRECISION) + gb[None, :])
        dw = tl.dot(dh_a, wd_a, input_precision=DOT_PRECISION)
        if SPLIT_H:
            dw = tl.dot(dh_b, wd_b, dw, input_precision=DOT_PRECISION)
        # the global term, mask[t] / count · dhg[b]·wgd, as one more dot on rows scaled by mask / count
        dhg_a = tl.zeros([HA], dtype=tl.float32)
        dhg_b = tl.zeros([HB], dtype=tl.float32)
        count = 0.0
        for i in range(0, n_dh_tiles):
            part = b * n_dh_tiles + i
            dhg_a += tl.load(DHG_PART + part * H + offs_ha, mask=ha_ok, other=0.0)
            dhg_b += tl.load(DHG_PART + part * H + offs_hb, mask=hb_ok, other=0.0)
            count += tl.load(COUNT_PART + part)
        scale = mask_row(MASK, b, offs_t, t_ok, stride_mb, stride_mt, HAS_MASK) / tl.maximum(count, 1.0)
        hg_a = tl.load(GLOB + b * (E + H) + E + offs_ha, mask=ha_ok, other=0.0)
        dhg_a = tl.where(hg_a <= 0, 0.0, dhg_a)  # relu's gradient; a NaN in hg passes, as in torch
        dw = tl.dot((scale[:, None] * dhg_a[None, :]).to(WGD.dtype.element_ty), wgd_a, dw,
                    input_precision=DOT_PRECISION)
        if SPLIT_H:
            hg_b = tl.load(GLOB + b * (E + H) + E + offs_hb, mask=hb_ok, other=0.0)
            dhg_b = tl.where(hg_b <= 0, 0.0, dhg_b)
            dw = tl.dot((scale[:, None] * dhg_b[None, :]).to(WGD.dtype.element_ty), wgd_b, dw,
                        input_precision=DOT_PRECISION)
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
    if BLOCK_E >= 32:  # fp16/bf16 on sm_90: a scalar base and a fresh arange, no per-thread offsets held
        # across the token loop (saves a spill at 255 registers); 16-wide chunks spill under Triton 3.9 that way
        base = split * E * H + tl.program_id(0).to(tl.int64) * BLOCK_E * H + tl.arange(0, BLOCK_E)[None, :] * H
    else:
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
    DWU_PART, DWD_PART, DBD_PART, DG_PART, DHG_PART, G, GLOB,
    D_WLD, D_BLD, D_WLU, D_BLU, D_WGD, D_BGD, D_WGU, D_BGU,
    B, E, H, n_splits, n_tiles, n_dh_tiles,
    BLOCK_E: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, H_PAD: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """All eight parameter gradients, each written once in its own dtype; grid (cdiv(E, BLOCK_E),).

    Program p owns columns e of every E-indexed gradient: it sums the splits' partials of both local
    weights, and from the backward_dh tiles' partials (tile b·n_dh_tiles + i of sequence b) forms
    dG = Σ_i DG_PART (B, E chunk) and dhg = (Σ_i DHG_PART) ⊙ [hg > 0] (B, H in blocks of BLOCK_H; every
    program sums these rows again) for global_up.weight[chunk] = dGᵀ·hg, global_up.bias[chunk] = local_up.bias[chunk]
    = Σ_b dG and global_down.weight[:, chunk] = dhgᵀ·g (tensor cores for fp16/bf16, g halved to stay in
    range). Program 0 also writes the two H-long biases. hg = GLOB[:, E:]; weight gradients contiguous.
    Sums run in a fixed order: deterministic.
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
    op = D_WGD.dtype.element_ty
    for h0 in range(0, H, BLOCK_H):  # H in blocks: few registers
        offs_k = h0 + tl.arange(0, BLOCK_H)
        k_ok = offs_k < H
        acc_wgu = tl.zeros([BLOCK_E, BLOCK_H], dtype=tl.float32)
        acc_wgd = tl.zeros([BLOCK_H, BLOCK_E], dtype=tl.float32)
        db = tl.zeros([BLOCK_E], dtype=tl.float32)
        dbg = tl.zeros([BLOCK_H], dtype=tl.float32)
        for b0 in range(0, B, BLOCK_B):
            offs_b = (b0 + tl.arange(0, BLOCK_B)).to(tl.int64)
            b_ok = offs_b < B
            d_big_g = tl.zeros([BLOCK_B, BLOCK_E], dtype=tl.float32)
            dhg = tl.zeros([BLOCK_B, BLOCK_H], dtype=tl.float32)
            for i in range(0, n_dh_tiles):
                tiles = offs_b * n_dh_tiles + i
                d_big_g += load_cols(DG_PART, tiles, b_ok, offs_e, e_ok, E, 1)
                dhg += load_cols(DHG_PART, tiles, b_ok, offs_k, k_ok, H, 1)
            hg = load_cols(GLOB + E, offs_b, b_ok, offs_k, k_ok, E + H, 1)
            dhg = tl.where(hg <= 0, 0.0, dhg)
            g_half = (load_cols(G, offs_b, b_ok, offs_e, e_ok, E, 1) * 0.5).to(op)
            acc_wgu = tl.dot(tl.trans(d_big_g.to(op)), hg.to(op), acc_wgu, input_precision=DOT_PRECISION)
            acc_wgd = tl.dot(tl.trans(dhg.to(op)), g_half, acc_wgd, input_precision=DOT_PRECISION)
            db += tl.sum(d_big_g, axis=0)
            dbg += tl.sum(dhg, axis=0)
        tl.store(D_WGU + offs_e[:, None] * H + offs_k[None, :], acc_wgu.to(D_WGU.dtype.element_ty),
                 mask=e_ok[:, None] & k_ok[None, :])
        tl.store(D_WGD + offs_k[:, None] * E + offs_e[None, :], (2.0 * acc_wgd).to(op),
                 mask=k_ok[:, None] & e_ok[None, :])
        if h0 == 0:
            tl.store(D_BGU + offs_e, db.to(D_BGU.dtype.element_ty), mask=e_ok)
            tl.store(D_BLU + offs_e, db.to(D_BLU.dtype.element_ty), mask=e_ok)
        if pid == 0:
            tl.store(D_BGD + offs_k, dbg.to(D_BGD.dtype.element_ty), mask=k_ok)
    if pid == 0:
        dbd = tl.zeros([H_PAD], dtype=tl.float32)
        for i in range(0, n_tiles):
            dbd += tl.load(DBD_PART + i * H + offs_h, mask=h_ok, other=0.0)
        tl.store(D_BLD + offs_h, dbd.to(D_BLD.dtype.element_ty), mask=h_ok)
