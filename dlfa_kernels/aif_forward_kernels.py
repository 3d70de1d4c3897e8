"""Forward kernels of the AIF fusion: the masked mean of X + Y, and the fused gate and blend per token tile."""
import triton
import triton.language as tl

from .aif_device import chunk_gate, local_hidden, mask_row, tile_tokens


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
        m = mask_row(MASK, b, offs_t, t_ok, stride_mb, stride_mt, HAS_MASK)
        count += m
        x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
        y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
        w = x.to(tl.float32) + y.to(tl.float32)
        # where, not a product: a NaN in a padded position must not reach the mean
        acc += tl.sum(tl.where(m[:, None] != 0, w * m[:, None], 0.0), axis=0)
    inv = 1.0 / tl.maximum(tl.sum(count, axis=0), 1.0)
    tl.store(G_OUT + b * E + offs_e, acc * inv, mask=e_ok)


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
    offs_t, t_ok = tile_tokens(pid % n_t_tiles, tile_t, T, BLOCK_M)
    h_a, h_b = local_hidden(X, Y, WD, BD, b, offs_t, t_ok, E, H,
                             stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                             stride_wdh, stride_wde, BLOCK_M, BLOCK_E, HA, HB, SPLIT_H, DOT_PRECISION)
    for e0 in range(0, E, BLOCK_E):
        offs_e = (e0 + tl.arange(0, BLOCK_E)).to(tl.int64)
        gate, x, y, _, _, ok = chunk_gate(X, Y, WU, GB, b, offs_t, t_ok, offs_e, offs_e < E, h_a, h_b, E, H,
                                           stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye,
                                           stride_wue, stride_wuh, HA, HB, SPLIT_H, DOT_PRECISION)
        y = y.to(tl.float32)
        z = y + gate * (x.to(tl.float32) - y)
        tl.store(Z + b * stride_zb + offs_t[:, None] * stride_zt + offs_e[None, :] * stride_ze,
                 z.to(Z.dtype.element_ty), mask=ok)
