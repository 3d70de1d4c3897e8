"""Forward kernels of the AIF fusion: the masked mean of X + Y with the first half of the global branch,
and per token tile the rest of the global branch, the local branch, the gate and the blend."""
import triton
import triton.language as tl

from .aif_device import chunk_gate, global_up_chunk, load_cols, local_hidden, mask_row, relu, tile_tokens


@triton.jit
def _aif_pool_kernel(
    X, Y, MASK, WGD, G_OUT, HG_PART,
    T, E, H,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_mb, stride_mt, stride_wgdh, stride_wgde,
    BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, HAS_MASK: tl.constexpr,
):
    """g[b, e] = Σ_t mask[b,t]·(X+Y)[b,t,e] / max(Σ_t mask[b,t], 1), and the chunk's share of global_down.

    grid (B, n_chunks = cdiv(E, BLOCK_E)); G_OUT: (B, E) fp32; HG_PART: (B, n_chunks, H) fp32,
    HG_PART[b, c] = g[b, chunk c]·global_down.weight[:, chunk c]ᵀ (a vector-matrix product, one
    sequence a program, on CUDA cores), summed over c by the forward kernel.
    """
    b = tl.program_id(0).to(tl.int64)
    offs_e = (tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    e_ok = offs_e < E
    acc = tl.zeros([BLOCK_E], dtype=tl.float32)
    count = tl.zeros([BLOCK_T], dtype=tl.float32)
    for t0 in range(0, T, BLOCK_T):
        offs_t = (t0 + tl.arange(0, BLOCK_T)).to(tl.int64)
        t_ok = offs_t < T
        ok = t_ok[:, None] & e_ok[None, :]
        m = mask_row(MASK, b, offs_t, t_ok, stride_mb, stride_mt, HAS_MASK)
        count += m
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        w = x.to(tl.float32) + y.to(tl.float32)
        # where, not a product: a NaN in a padded position must not reach the mean
        acc += tl.sum(tl.where(m[:, None] != 0, w * m[:, None], 0.0), axis=0)
    g = acc / tl.maximum(tl.sum(count, axis=0), 1.0)
    tl.store(G_OUT + b * E + offs_e, g, mask=e_ok)
    part = HG_PART + (b * tl.num_programs(1) + tl.program_id(1)) * H
    for h0 in range(0, H, BLOCK_H):
        offs_h = h0 + tl.arange(0, BLOCK_H)
        h_ok = offs_h < H
        wgd_t = load_cols(WGD, offs_e, e_ok, offs_h, h_ok, stride_wgde, stride_wgdh).to(tl.float32)
        tl.store(part + offs_h, tl.sum(g[:, None] * wgd_t, axis=0), mask=h_ok)


@triton.jit
def _aif_forward_kernel(
    X, Y, Z, WD, BD, WU, HG_PART, BGD, WGU, BGU, BLU, H_OUT, GLOB, GB_TILE,
    T, E, H, n_t_tiles, tile_t, n_g_chunks,
    stride_xb, stride_xt, stride_xe,
    stride_yb, stride_yt, stride_ye,
    stride_zb, stride_zt, stride_ze,
    stride_wdh, stride_wde, stride_wue, stride_wuh, stride_wgue, stride_wguh,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, HA: tl.constexpr, HB: tl.constexpr,
    SPLIT_H: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Z for one tile of tile_t ≤ BLOCK_M tokens of one sequence; grid (B · n_t_tiles,).

    Every program first finishes the global branch of its sequence: hg = relu(Σ_c HG_PART[b, c] + bgd)
    (H) and gb = hg·global_upᵀ + biases (E; vector-matrix, CUDA cores) into its row of GB_TILE (tiles, E)
    fp32, read back per E chunk; the sequence's first tile also writes gb and hg to GLOB (B, E + H) fp32.
    The local hidden h = relu(W·wdᵀ + bd) goes to H_OUT (N, H) in X's dtype. GLOB and h are kept for
    the backward.
    """
    pid = tl.program_id(0).to(tl.int64)
    b = pid // n_t_tiles
    first = pid % n_t_tiles == 0
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    ha_ok = offs_ha < H
    hb_ok = offs_hb < H
    glob = GLOB + b * (E + H)
    hg_a = tl.load(BGD + offs_ha, mask=ha_ok, other=0.0).to(tl.float32)
    hg_b = tl.load(BGD + offs_hb, mask=hb_ok, other=0.0).to(tl.float32)
    for c in range(0, n_g_chunks):
        hg_a += tl.load(HG_PART + (b * n_g_chunks + c) * H + offs_ha, mask=ha_ok, other=0.0)
        hg_b += tl.load(HG_PART + (b * n_g_chunks + c) * H + offs_hb, mask=hb_ok, other=0.0)
    hg_a = relu(hg_a)
    hg_b = relu(hg_b)
    if first:
        tl.store(glob + E + offs_ha, hg_a, mask=ha_ok)
        tl.store(glob + E + offs_hb, hg_b, mask=hb_ok)
    for e0 in range(0, E, 16):  # 16 rows of global_up at a time: few registers
        offs_e = (e0 + tl.arange(0, 16)).to(tl.int64)
        e_ok = offs_e < E
        gb = global_up_chunk(WGU, BGU, BLU, hg_a, hg_b, offs_e, e_ok, H, stride_wgue, stride_wguh, HA, HB, SPLIT_H)
        tl.store(GB_TILE + pid * E + offs_e, gb, mask=e_ok)
        if first:
            tl.store(glob + offs_e, gb, mask=e_ok)
    tl.debug_barrier()  # makes this program's GB_TILE row visible to all its threads
    offs_t, t_ok = tile_tokens(pid % n_t_tiles, tile_t, T, BLOCK_M)
    h_a, h_b = local_hidden(X, Y, WD, BD, b, offs_t, t_ok, E, H,
                            stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                            stride_wdh, stride_wde, BLOCK_M, BLOCK_E, HA, HB, SPLIT_H, DOT_PRECISION)
    rows = b * T + offs_t
    tl.store(H_OUT + rows[:, None] * H + offs_ha[None, :], h_a, mask=t_ok[:, None] & ha_ok[None, :])
    if SPLIT_H:
        tl.store(H_OUT + rows[:, None] * H + offs_hb[None, :], h_b, mask=t_ok[:, None] & hb_ok[None, :])
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        e_ok = offs_e < E
        gb = tl.load(GB_TILE + pid * E + offs_e, mask=e_ok, other=0.0)
        gate, x, y, _, _, ok = chunk_gate(X, Y, WU, gb, b, offs_t, t_ok, offs_e, e_ok, h_a, h_b, H,
                                          stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                                          stride_wue, stride_wuh, HA, HB, SPLIT_H, DOT_PRECISION)
        y = y.to(tl.float32)
        z = y + gate * (x.to(tl.float32) - y)
        tl.store(Z + b * stride_zb + offs_t[:, None] * stride_zt + offs_e[None, :] * stride_ze,
                 z.to(Z.dtype.element_ty), mask=ok)
