"""Tile sizes, grids and options of every AIF kernel launch (no autotuning: a fixed table, checked
spill-free by tests/aot_compile.py and costed by benchmarks/traffic.py)."""
from __future__ import annotations

import torch
import triton

# The fewest programs a token-tiled launch is split into, as a fraction of the SMs. Each token tile
# re-reads the E×H weights from L2, so past this the time model (benchmarks/traffic.py) pays more for
# the re-reads than it gains from the idle SMs it fills: at mBERT-base bf16 the forward kernel models
# 10.5 µs in 64 tiles of 64 rows, 13.4 µs in 96 tiles (a fraction of 0.5), 19.1 µs in 160 (1.0, v2's).
MIN_PROGRAMS_PER_SM = 0.25

# ptxas of Triton 3.6 (the GPU machine's) and of later Tritons spill at different tile shapes; the few
# launches where no one shape suits both choose by version (tests/test_aif_aot_compile.py compiles both)
TRITON_3_6 = tuple(int(p) for p in triton.__version__.split(".")[:2]) < (3, 7)


def hidden_blocks(H: int, widest: int = 0) -> tuple[int, int]:
    """Two power-of-two column blocks covering H (HA, HB), HB = 0 when one block is as small.

    192 -> (128, 64), 96 -> (64, 32), 256 -> (256, 0), 10 -> (16, 0); ``widest`` (a power of two, 0:
    no limit) caps both blocks where two such blocks cover H: 256, widest=128 -> (128, 128).
    """
    full = max(16, triton.next_power_of_2(H))
    first = max(16, full // 2)
    if H <= first:
        return full, 0
    second = max(16, triton.next_power_of_2(H - first))
    if widest and full > widest and first <= widest and second <= widest:
        return first, second
    return (first, second) if first + second < full else (full, 0)


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 dots follow torch's matmul setting, as nn.Linear does ("ieee" unless tf32 is allowed)."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def token_tiles(B: int, T: int, min_programs: int, most: int) -> tuple[int, int, int]:
    """(tiles per sequence, tokens per tile, rows per tile) of a token-tiled kernel.

    The fewest tiles of at most ``most`` rows that still give ``min_programs`` programs (B · tiles);
    tiles stay inside one sequence; a tile of 26 tokens computes 32 rows (rows: a power of two, ≥ 16).
    T = 0 gives one empty tile a sequence (the per-sequence work of the token-tiled kernels still runs).
    """
    if T == 0:
        return 1, 1, 16
    tiles = min(max(triton.cdiv(T, most), triton.cdiv(min_programs, max(B, 1))), triton.cdiv(T, 16))
    tile_t = triton.cdiv(T, tiles)
    tiles = triton.cdiv(T, tile_t)
    return tiles, tile_t, max(16, triton.next_power_of_2(tile_t))


def weight_gradient_grid(E: int, tiles: int, block_e: int, n_sm: int) -> tuple[int, int, int]:
    """(E chunks, token splits, tiles per split) of the weight-gradient kernel: at most one wave of
    ``n_sm`` programs, each split ``tiles per split`` consecutive tiles of the ``tiles`` token tiles."""
    n_e = triton.cdiv(E, block_e)
    splits = min(tiles, max(1, n_sm // n_e))
    per_split = triton.cdiv(tiles, splits) if splits else 0
    splits = triton.cdiv(tiles, per_split) if per_split else 0
    return n_e, splits, per_split


def launch_config(B: int, T: int, E: int, H: int, dtype: torch.dtype, n_sm: int, hopper: bool = True,
                  large: bool = False) -> dict:
    """Tile sizes, grids and options of every launch of one forward and one backward.

    Keyed on E, H and dtype, and on B·T only through the token-tile height and the number of
    token splits of the weight-gradient kernel (one wave of ``n_sm`` programs). ``hopper``: sm_90 or
    later, whose wgmma (64-row tiles) keeps dot operands in shared memory; before it the token tiles
    are shorter and the weight-gradient kernel takes narrower E chunks to stay within 255 registers.
    ``large``: a tensor of the backward spans 2**31 elements or more; its 64-bit offsets take the
    registers of a 64-wide E chunk, so backward_dh and the weight gradients take 32-wide ones.
    """
    half = dtype != torch.float32
    # fp32 "ieee" dots are FMA loops with operands and accumulators in registers: blocks of at most 128
    # columns, 16-row tiles and 16-wide E chunks keep forward and backward_dh spill-free (32 rows spill
    # under Triton 3.6)
    ha, hb = hidden_blocks(H, widest=0 if half else 128)
    h_pad = max(16, triton.next_power_of_2(H))
    wide = ha + hb >= 192
    precision = dot_precision(dtype)
    min_programs = max(1, int(n_sm * MIN_PROGRAMS_PER_SM))
    # the most rows a compiled forward / backward_dh holds in 255 registers
    most = (64 if hopper else 32) if half else 16
    n_t, tile_t, rows = token_tiles(B, T, min_programs, most)
    block_e = (64 if ha + hb >= 64 else 32) if half else 16
    tile = {
        "BLOCK_E": block_e, "HA": ha, "HB": max(hb, 16), "SPLIT_H": hb > 0, "DOT_PRECISION": precision,
        "num_warps": 8 if wide else 4, "num_stages": 2 if half else 1, "BLOCK_M": rows,
        "grid": (B * n_t,), "n_t_tiles": n_t, "tile_t": tile_t,
    }
    dh_block_e = 32 if ha + hb >= 256 or not hopper or large else block_e
    if not half and not hopper and ha + hb <= 96:  # FMA dots on sm_80: 32-wide chunks spill 8 B under Triton 3.6
        # (64-wide ones spill on sm_90)
        dh_block_e = 64
    dw_rows = min(32 if half else 16, max(16, triton.next_power_of_2(max(T, 1))))
    # fp32 "ieee" dots run on FMA units, operands in registers
    dw_block_e = (64 if hopper else 16) if half else 16
    if dw_block_e == 64 and (large or B * triton.cdiv(T, dw_rows) < triton.cdiv(E, dw_block_e)):
        # fewer token tiles than E chunks (a short batch, a split holds a tile or two): 32-wide chunks and
        # 16-row tiles, whose accumulators fit in 255 registers at E = 1024 (64 x 32 spill 368 B at
        # B = 4, T = 77) and whose grid is larger there (128 programs instead of 96); past 2**31
        # elements likewise (64 x 32 spill 16-248 B under Triton 3.9)
        dw_block_e, dw_rows = 32, 16
    dw_warps = 8 if half or wide else 4
    if not half and not hopper and ha + hb <= 192:  # fp32 on sm_80: 8 warps spill 16 B at E=768 under Triton 3.6
        dw_warps = 16
    dw_columns = {}
    if not half and ha + hb == h_pad > 128 and not TRITON_3_6:
        # fp32 weight gradients at H = 256: one 256-wide column block, 154-160 registers under Triton 3.9
        # where 128 + 128 spill 8 B at 254 on sm_90; under 3.6 the reverse (8-40 B in one block)
        dw_columns = {"HA": h_pad, "HB": 16, "SPLIT_H": False}
    dw_n_t = triton.cdiv(T, dw_rows)
    dw_tiles = B * dw_n_t
    n_e, splits, per_split = weight_gradient_grid(E, dw_tiles, dw_block_e, n_sm)
    return {
        "pool": {"grid": (B, triton.cdiv(E, 64)), "BLOCK_T": 32, "BLOCK_E": 64, "BLOCK_H": 64, "num_warps": 4},
        "forward": dict(tile),
        # 64 rows of dh over H = 256 leave no registers for 64-wide E chunks
        # 3 stages on sm_90 leave ptxas room for the 64-bit offsets of a tensor past 2**31 elements
        "backward_dh": dict(tile, num_warps=8 if wide or (half and ha + hb >= 96) else 4,
                            num_stages=3 if half and hopper else tile["num_stages"],
                            BLOCK_E=dh_block_e),
        "backward": dict(tile, BLOCK_M=dw_rows, BLOCK_E=dw_block_e, num_warps=dw_warps,
                         num_stages=tile["num_stages"] if hopper else 1, grid=(n_e, splits),
                         n_t_tiles=dw_n_t, n_tiles=dw_tiles, tiles_per_split=per_split, **dw_columns),
        "finalize": {"grid": (triton.cdiv(E, 16),), "BLOCK_E": 16, "BLOCK_B": 16, "BLOCK_H": min(64, h_pad),
                     "H_PAD": h_pad, "DOT_PRECISION": precision,
                     # 8 warps over 16x16 tiles replicate them; Triton 3.6 moves the copies through local memory
                     "num_warps": 4 if h_pad <= 16 else 8},
    }


CONSTEXPRS = {  # the constexpr arguments each kernel takes from its launch_config entry
    "pool": ("BLOCK_T", "BLOCK_E", "BLOCK_H"),
    "forward": ("BLOCK_M", "BLOCK_E", "HA", "HB", "SPLIT_H", "DOT_PRECISION"),
    "backward_dh": ("BLOCK_M", "BLOCK_E", "HA", "HB", "SPLIT_H", "DOT_PRECISION"),
    "backward": ("BLOCK_M", "BLOCK_E", "HA", "HB", "SPLIT_H", "DOT_PRECISION"),
    "finalize": ("BLOCK_E", "BLOCK_B", "BLOCK_H", "H_PAD", "DOT_PRECISION"),
}
