"""Modelled memory traffic, FLOPs and waves of every fused AIF launch, from the launchers' own configuration.

    python benchmarks/traffic.py            # mBERT-base and the long shape, bf16 and fp32

Per kernel and shape: the bytes its programs request (L2 traffic: every load and store, counted
per program, so weights re-read by every tile count each time), the HBM bytes of a simple cache
model, useful FLOPs (the GEMMs of the math), executed FLOPs (after padding rows to tiles and H to
the two column blocks), programs and waves (programs / SMs, at one program per SM at a time).

Cache model: tensor granularity, least recently used, capacity half the L2 (H100: 25 of 50 MB);
a pass starts cold (inputs come from HBM); a read of a resident tensor costs no HBM; a written
tensor is dirty and is written back once, when evicted or at the end of the pass. Tile sizes,
grids and splits come from ``dlfa_kernels.aif_kernels.launch_config``, the function the launchers
call, so the model follows the code.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dlfa_kernels.aif_kernels import launch_config  # noqa: E402

N_SM = 132  # H100 SXM
L2_MODEL_BYTES = 25 * 2**20  # half of H100's 50 MB L2
SHAPES = {"mbert-base": (32, 128, 768), "long": (16, 512, 1024)}  # (B, T, E), H = E / 4
MASK_BYTES = 8  # a Hugging Face attention_mask is int64


@dataclass
class Kernel:
    name: str
    programs: int
    flops_useful: float
    flops_executed: float
    accesses: list = field(default_factory=list)  # (tensor, bytes requested, "r" | "w", tensor size)

    def read(self, tensor, requested, size=None):
        self.accesses.append((tensor, requested, "r", requested if size is None else size))

    def write(self, tensor, requested, size=None):
        self.accesses.append((tensor, requested, "w", requested if size is None else size))

    @property
    def l2_bytes(self):
        return sum(a[1] for a in self.accesses)


def _rows(B, c):
    """Token rows computed (each tile padded to BLOCK_M rows) and tiles, for a token-tiled launch ``c``."""
    return B * c["n_t_tiles"] * c["BLOCK_M"], B * c["n_t_tiles"]


def _padded(n, block):
    return math.ceil(n / block) * block


def _global_forward(B, E, H, W, cfg):
    """The small global-branch launch (gb = G + local_up bias), run by both passes."""
    gf = cfg["global_forward"]
    glob = Kernel("global_forward", gf["grid"][0], 4 * B * E * H, 4 * _padded(B, 16) * _padded(E, gf["BLOCK_E"]) * gf["H_PAD"])
    glob.read("g", B * E * 4)
    glob.read("global weights", gf["grid"][0] * 2 * W, 2 * W)
    glob.write("gb", B * E * 4)
    return glob


def forward_kernels(B, T, E, H, dtype, cfg):
    """The three launches of one forward, with what each reads and writes."""
    p = torch.finfo(dtype).bits // 8
    N, S, W = B * T, B * T * E * p, E * H * p  # tokens, one B×T×E tensor, one weight matrix
    pool = Kernel("pool", math.prod(cfg["pool"]["grid"]), N * E, N * E)
    pool.read("x", S), pool.read("y", S), pool.read("mask", cfg["pool"]["grid"][1] * B * T * MASK_BYTES, B * T * MASK_BYTES)
    pool.write("g", B * E * 4)

    glob = _global_forward(B, E, H, W, cfg)

    f = cfg["forward"]
    rows, tiles = _rows(B, f)
    hh = f["HA"] + (f["HB"] if f["SPLIT_H"] else 0)
    fwd = Kernel("forward", tiles, 4 * N * E * H, 4 * rows * _padded(E, f["BLOCK_E"]) * hh)
    for t in ("x", "y"):  # once for W·wdᵀ, once for the blend
        fwd.read(t, 2 * S, S)
    fwd.read("local weights", tiles * 2 * W, 2 * W)
    fwd.read("gb", tiles * E * 4, B * E * 4)
    fwd.write("z", S)
    return [pool, glob, fwd]


def backward_kernels(B, T, E, H, dtype, cfg):
    """The five launches of one backward, with what each reads and writes."""
    p = torch.finfo(dtype).bits // 8
    N, S, W = B * T, B * T * E * p, E * H * p
    glob = _global_forward(B, E, H, W, cfg)

    d = cfg["backward_dh"]
    rows, tiles = _rows(B, d)
    hh = d["HA"] + (d["HB"] if d["SPLIT_H"] else 0)
    dh = Kernel("backward_dh", tiles, 6 * N * E * H, 6 * rows * _padded(E, d["BLOCK_E"]) * hh)
    for t in ("x", "y"):
        dh.read(t, 2 * S, S)
    dh.read("dz", S)
    dh.read("local weights", tiles * 2 * W, 2 * W)
    dh.read("gb", tiles * E * 4, B * E * 4)
    dh.write("h", N * H * p)
    dh.write("dh_pre", N * H * p)
    dh.write("dG partials", tiles * E * 4)
    dh.write("dbias partials", tiles * H * 4)

    gbw = cfg["global_backward"]
    gb_k = Kernel("global_backward", gbw["grid"][0], 6 * B * E * H,
                  6 * _padded(B, 16) * _padded(E, gbw["BLOCK_E"]) * gbw["H_PAD"])
    gb_k.read("g", B * E * 4)
    gb_k.read("dG partials", tiles * E * 4)
    gb_k.read("mask", B * T * MASK_BYTES)
    gb_k.read("global weights", gbw["grid"][0] * 3 * W, 2 * W)
    for t in ("dG", "dgs"):
        gb_k.write(t, B * E * 4)
    for t in ("hg", "dhg"):
        gb_k.write(t, B * H * 4)

    w = cfg["backward"]
    n_e, splits = w["grid"]
    rows_w, tiles_w = _rows(B, w)
    hh = w["HA"] + (w["HB"] if w["SPLIT_H"] else 0)
    part = splits * E * H * 4
    dw = Kernel("backward", n_e * splits, 8 * N * E * H, 8 * rows_w * n_e * w["BLOCK_E"] * hh)
    for t in ("x", "y", "dz"):
        dw.read(t, S)
    for t in ("h", "dh_pre"):  # every E chunk reads the whole N×H buffer
        dw.read(t, n_e * N * H * p, N * H * p)
    dw.read("local weights", n_e * splits * 2 * w["BLOCK_E"] * H * p, 2 * W)
    for t in ("gb", "dgs"):
        dw.read(t, n_e * tiles_w * w["BLOCK_E"] * 4, B * E * 4)
    dw.read("mask", n_e * B * T * MASK_BYTES, B * T * MASK_BYTES)
    for t in ("dx", "dy"):
        dw.write(t, S)
    for t in ("dwu partials", "dwd partials"):
        dw.write(t, part)

    fz = cfg["finalize"]
    fin = Kernel("finalize", fz["grid"][0], 4 * B * E * H, 4 * _padded(B, 16) * _padded(E, fz["BLOCK_E"]) * fz["H_PAD"])
    for t in ("dwu partials", "dwd partials"):
        fin.read(t, part)
    fin.read("dbias partials", tiles * H * 4)
    fin.read("dG", B * E * 4), fin.read("g", B * E * 4)
    fin.read("hg", fz["grid"][0] * B * H * 4, B * H * 4)
    fin.read("dhg", (fz["grid"][0] + 1) * B * H * 4, B * H * 4)
    fin.write("parameter gradients", 4 * W + (2 * H + 2 * E) * p)
    return [glob, dh, gb_k, dw, fin]


def hbm_bytes(kernels, capacity=L2_MODEL_BYTES):
    """HBM bytes per kernel under the LRU model, the pass starting cold; write-backs at the end go
    to the last kernel."""
    resident = {}  # tensor -> (size, dirty), in LRU order
    per_kernel = []

    def evict_for(size):
        spilled = 0
        while resident and sum(s for s, _ in resident.values()) + size > capacity:
            victim = next(iter(resident))
            vsize, dirty = resident.pop(victim)
            spilled += vsize if dirty else 0
        return spilled

    for k in kernels:
        moved = 0
        for tensor, _, kind, size in k.accesses:
            if tensor in resident:
                _, dirty = resident.pop(tensor)
                resident[tensor] = (size, dirty or kind == "w")
                continue
            moved += evict_for(size)
            moved += size if kind == "r" else 0
            resident[tensor] = (size, kind == "w")
        per_kernel.append(moved)
    per_kernel[-1] += sum(s for s, dirty in resident.values() if dirty)
    return per_kernel


def model(shape: str, dtype: torch.dtype, n_sm: int = N_SM):
    """Rows {pass, kernel, programs, waves, l2, hbm, flops_useful, flops_executed} and S in bytes."""
    B, T, E = SHAPES[shape]
    H = E // 4
    cfg = launch_config(B, T, E, H, dtype, n_sm)
    S = B * T * E * (torch.finfo(dtype).bits // 8)
    rows = []
    for name, kernels in (("forward", forward_kernels(B, T, E, H, dtype, cfg)),
                          ("backward", backward_kernels(B, T, E, H, dtype, cfg))):
        for k, hbm in zip(kernels, hbm_bytes(kernels)):
            rows.append({"pass": name, "kernel": k.name, "programs": k.programs, "waves": k.programs / n_sm,
                         "l2": k.l2_bytes, "hbm": hbm, "flops_useful": k.flops_useful,
                         "flops_executed": k.flops_executed})
    return rows, S


def totals(rows, S):
    """Per pass: HBM and L2 bytes in units of S."""
    out = {}
    for name in ("forward", "backward"):
        sel = [r for r in rows if r["pass"] == name]
        out[name] = {"hbm_S": sum(r["hbm"] for r in sel) / S, "l2_S": sum(r["l2"] for r in sel) / S,
                     "launches": len(sel)}
    return out


def main():
    for dtype in (torch.bfloat16, torch.float32):
        for shape, (B, T, E) in SHAPES.items():
            rows, S = model(shape, dtype)
            print(f"\n{shape} B={B} T={T} E={E} H={E // 4} {str(dtype).replace('torch.', '')}: "
                  f"S = {S / 1e6:.1f} MB, {N_SM} SMs, cache model {L2_MODEL_BYTES / 2**20:.0f} MiB")
            print(f"{'pass':9}{'kernel':17}{'programs':>9}{'waves':>7}{'L2 MB':>9}{'HBM MB':>9}{'L2/S':>7}"
                  f"{'HBM/S':>7}{'GFLOP useful':>14}{'executed':>10}")
            for r in rows:
                print(f"{r['pass']:9}{r['kernel']:17}{r['programs']:>9}{r['waves']:>7.2f}{r['l2'] / 1e6:>9.1f}"
                      f"{r['hbm'] / 1e6:>9.1f}{r['l2'] / S:>7.2f}{r['hbm'] / S:>7.2f}"
                      f"{r['flops_useful'] / 1e9:>14.3f}{r['flops_executed'] / 1e9:>10.3f}")
            for name, t in totals(rows, S).items():
                print(f"{name}: {t['launches']} launches, HBM {t['hbm_S']:.2f} S, L2 {t['l2_S']:.2f} S "
                      f"({t['l2_S'] / t['hbm_S']:.1f}× HBM)")


if __name__ == "__main__":
    main()
