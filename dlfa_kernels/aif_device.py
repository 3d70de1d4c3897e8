"""Device functions shared by the AIF kernels: mask rows and counts, token tiles, the local hidden
activation and the per-chunk gate. Shapes and the W/2 operand are described in ``aif_kernels``."""
import triton
import triton.language as tl


@triton.jit
def mask_row(MASK, b, offs_t, t_ok, stride_mb, stride_mt, HAS_MASK: tl.constexpr):
    """mask[b, offs_t] as fp32 (0 past T); 1 for every token when there is no mask."""
    if HAS_MASK:
        m = tl.load(MASK + b * stride_mb + offs_t * stride_mt, mask=t_ok, other=0).to(tl.float32)
    else:
        m = tl.where(t_ok, 1.0, 0.0)
    return m


@triton.jit
def token_count(MASK, offs_b, b_ok, T, stride_mb, stride_mt, BLOCK_B: tl.constexpr, BLOCK_T: tl.constexpr,
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
def tile_tokens(tile, tile_t, T, BLOCK_M: tl.constexpr):
    """Token offsets (BLOCK_M,) int64 of tile ``tile`` of a sequence, tile_t tokens a tile, and which are real."""
    rows = tl.arange(0, BLOCK_M)
    offs_t = tile * tile_t + rows.to(tl.int64)
    return offs_t, (rows < tile_t) & (offs_t < T)


@triton.jit
def relu(v):
    """max(v, 0) with NaN kept, as torch.relu does (relu's gradient mask is then v <= 0 -> 0)."""
    return tl.maximum(v, 0.0, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def load_cols(PTR, offs_r, r_ok, offs_c, c_ok, stride_r, stride_c):
    """A (rows, cols) tile of a 2-D tensor, 0 outside."""
    return tl.load(PTR + offs_r[:, None] * stride_r + offs_c[None, :] * stride_c,
                   mask=r_ok[:, None] & c_ok[None, :], other=0.0)


@triton.jit
def local_hidden(
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
        wd_a = load_cols(WD, offs_e, e_ok, offs_ha, offs_ha < H, stride_wde, stride_wdh)
        acc_a = tl.dot(w_half, wd_a, acc_a, input_precision=DOT_PRECISION)
        if SPLIT_H:
            wd_b = load_cols(WD, offs_e, e_ok, offs_hb, offs_hb < H, stride_wde, stride_wdh)
            acc_b = tl.dot(w_half, wd_b, acc_b, input_precision=DOT_PRECISION)
    bd_a = tl.load(BD + offs_ha, mask=offs_ha < H, other=0.0).to(tl.float32)
    h_a = 2.0 * acc_a + bd_a[None, :]
    h_b = acc_b
    if SPLIT_H:
        bd_b = tl.load(BD + offs_hb, mask=offs_hb < H, other=0.0).to(tl.float32)
        h_b = 2.0 * acc_b + bd_b[None, :]
    return relu(h_a).to(X.dtype.element_ty), relu(h_b).to(X.dtype.element_ty)


@triton.jit
def local_up(h_a, h_b, wu_a, wu_b, SPLIT_H: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """h·wuᵀ for one E chunk: h_a (M, HA), wu_a (BLOCK_E, HA) and likewise b -> (M, BLOCK_E) fp32."""
    s = tl.dot(h_a, tl.trans(wu_a), input_precision=DOT_PRECISION)
    if SPLIT_H:
        s = tl.dot(h_b, tl.trans(wu_b), s, input_precision=DOT_PRECISION)
    return s


@triton.jit
def chunk_gate(
    X, Y, WU, gb, b, offs_t, t_ok, offs_e, e_ok, h_a, h_b, H,
    stride_xb, stride_xt, stride_xe, stride_yb, stride_yt, stride_ye, stride_wue, stride_wuh,
    HA: tl.constexpr, HB: tl.constexpr, SPLIT_H: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """For one E chunk of a token tile: the gate sigmoid(h·wuᵀ + gb) (BLOCK_M, BLOCK_E) fp32 with gb the
    chunk's (BLOCK_E,) fp32 G + local_up.bias, X and Y there, the chunk's up-projection blocks wu_a
    (BLOCK_E, HA), wu_b, and the in-bounds mask."""
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    ok = t_ok[:, None] & e_ok[None, :]
    wu_a = load_cols(WU, offs_e, e_ok, offs_ha, offs_ha < H, stride_wue, stride_wuh)
    wu_b = load_cols(WU, offs_e, e_ok, offs_hb, offs_hb < H, stride_wue, stride_wuh)
    gate = tl.sigmoid(local_up(h_a, h_b, wu_a, wu_b, SPLIT_H, DOT_PRECISION) + gb[None, :])
    x = tl.load(X + b * stride_xb + offs_t[:, None] * stride_xt + offs_e[None, :] * stride_xe, mask=ok, other=0.0)
    y = tl.load(Y + b * stride_yb + offs_t[:, None] * stride_yt + offs_e[None, :] * stride_ye, mask=ok, other=0.0)
    return gate, x, y, wu_a, wu_b, ok


@triton.jit
def global_up_chunk(WGU, BGU, BLU, hg_a, hg_b, offs_e, e_ok, H, stride_wgue, stride_wguh,
                    HA: tl.constexpr, HB: tl.constexpr, SPLIT_H: tl.constexpr):
    """gb = hg·global_upᵀ + global_up.bias + local_up.bias on one E chunk: (BLOCK_E,) fp32.

    hg (fp32) as columns [0, HA) and [HA, HA + HB); a vector-matrix product, on CUDA cores."""
    offs_ha = tl.arange(0, HA)
    offs_hb = HA + tl.arange(0, HB)
    wgu_a = load_cols(WGU, offs_e, e_ok, offs_ha, offs_ha < H, stride_wgue, stride_wguh).to(tl.float32)
    gb = tl.sum(wgu_a * hg_a[None, :], axis=1)
    if SPLIT_H:
        wgu_b = load_cols(WGU, offs_e, e_ok, offs_hb, offs_hb < H, stride_wgue, stride_wguh).to(tl.float32)
        gb += tl.sum(wgu_b * hg_b[None, :], axis=1)
    return gb + tl.load(BGU + offs_e, mask=e_ok, other=0.0).to(tl.float32) + \
        tl.load(BLU + offs_e, mask=e_ok, other=0.0).to(tl.float32)
