"""Modelled memory traffic, FLOPs, waves and time of every fused AIF launch, from the launchers' own configuration.

    python benchmarks/traffic.py            # mBERT-base and the long shape, bf16 and fp32, as tables
    python benchmarks/traffic.py --json     # the same as one JSON object: shape -> dtype -> pass -> time, kernels

Per kernel and shape: the bytes its programs request (L2 traffic: every load and store, counted
per program, so weights re-read by every tile count each time), the HBM bytes of a simple cache
model, useful FLOPs (the matrix products of the math), executed FLOPs (after padding rows to tiles and H to
the two column blocks) on tensor cores (``tl.dot``; on CUDA cores for fp32 "ieee" dots) and on CUDA
cores (vector-matrix products), programs and waves (programs / SMs, at one program per SM at a time).

Cache model: tensor granularity, least recently used, capacity half the L2 (H100: 25 of 50 MB);
a pass starts cold (inputs come from HBM); a read of a resident tensor costs no HBM; a written
tensor is dirty and is written back once, when evicted or at the end of the pass. Tile sizes,
grids and splits come from ``dlfa_kernels.aif_kernels.launch_config``, the function the launchers
call, so the model follows the code.

Time model (H200 constants measured on the GPU machine): per launch
``max(HBM / 4.3 TB/s, L2 / 10 TB/s, tensor-core FLOPs / (790 TFLOP/s × active),
CUDA-core FLOPs / (67 TFLOP/s × active)) + 1.5 µs``, active = min(programs, SMs) / SMs; tf32 runs
at half the bf16 rate. A pass is the sum of its launches.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dlfa_kernels.aif_kernels import launch_config  # noqa: E402

N_SM = 132  # H100 SXM, H200
L2_MODEL_BYTES = 25 * 2**20  # half of H100's 50 MB L2
SHAPES = {"mbert-base": (32, 128, 768), "long": (16, 512, 1024)}  # (B, T, E), H = E / 4
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
MASK_BYTES = 8  # a Hugging Face attention_mask is int64
HBM_BYTES_PER_S = 4.3e12
L2_BYTES_PER_S = 10e12
TENSOR_FLOPS = 790e12  # bf16 dense GEMM; tf32 at half
CUDA_CORE_FLOPS = 67e12
LAUNCH_S = 1.5e-6


@dataclass
class Kernel:
    name: str
    programs: int
    flops_useful: float
    flops_executed: float  # the dots' FLOPs as executed, on the unit DOT_PRECISION and dtype give them
    unit: str = "tensor"  # where the dots run: "tensor" (fp16/bf16), "tf32" (tensor cores, half rate), "cuda"
    flops_vector: float = 0.0  # vector-matrix products on CUDA cores
    accesses: list = field(default_factory=list)  # (tensor, bytes requested, "r" | "w", tensor size)

    def read(self, tensor, requested, size=None):
        self.accesses.append((tensor, requested, "r", requested if size is None else size))

    def write(self, tensor, requested, size=None):
        self.accesses.append((tensor, requested, "w", requested if size is None else size))

    @property
    def l2_bytes(self):
        return sum(a[1] for a in self.accesses)

    def seconds(self, hbm: float, n_sm: int = N_SM) -> dict:
        """Modelled time of the launch and each term of the max (seconds)."""
        active = min(self.programs, n_sm) / n_sm if self.programs else 1.0
        tensor = self.flops_executed if self.unit != "cuda" else 0.0
        cuda = self.flops_vector + (self.flops_executed if self.unit == "cuda" else 0.0)
        terms = {"hbm": hbm / HBM_BYTES_PER_S, "l2": self.l2_bytes / L2_BYTES_PER_S,
                 "tensor": tensor / (TENSOR_FLOPS * (0.5 if self.unit == "tf32" else 1.0) * active),
                 "cuda_core": cuda / (CUDA_CORE_FLOPS * active)}
        bound = max(terms, key=terms.get)
        return {"time": terms[bound] + LAUNCH_S, "bound": bound, **terms}


def _unit(c, dtype):
    """Where the dots of launch configuration ``c`` run: fp32 "ieee" dots are FMA loops on CUDA cores."""
    if dtype != torch.float32:
        return "tensor"
    return "tf32" if c["DOT_PRECISION"] == "tf32" else "cuda"


def _rows(B, c):
    """Token rows computed (each tile padded to BLOCK_M rows) and tiles, for a token-tiled launch ``c``."""
    return B * c["n_t_tiles"] * c["BLOCK_M"], B * c["n_t_tiles"]


def _padded(n, block):
    return math.ceil(n / block) * block


def forward_kernels(B, T, E, H, dtype, cfg):
    """The two launches of one forward, with what each reads and writes."""
    p = torch.finfo(dtype).bits // 8
    N, S, W = B * T, B * T * E * p, E * H * p  # tokens, one B×T×E tensor, one weight matrix
    n_b, n_g = cfg["pool"]["grid"]
    # the mean, and per (sequence, E chunk) its share of global_down: g·wgdᵀ, one row a program
    pool = Kernel("pool", n_b * n_g, 2 * B * E * H, 0, unit="none", flops_vector=2 * B * E * H)
    pool.read("x", S), pool.read("y", S), pool.read("mask", n_g * B * T * MASK_BYTES, B * T * MASK_BYTES)
    pool.read("global_down weight", B * W, W)
    pool.write("g", B * E * 4)
    pool.write("hg partials", B * n_g * H * 4)

    f = cfg["forward"]
    rows, tiles = _rows(B, f)
    hh = f["HA"] + (f["HB"] if f["SPLIT_H"] else 0)
    # every tile finishes its sequence's global branch: hg from the partials, gb = hg·wguᵀ (vector-matrix)
    fwd = Kernel("forward", tiles, 4 * N * E * H + 2 * B * E * H, 4 * rows * _padded(E, f["BLOCK_E"]) * hh,
                 _unit(f, dtype), flops_vector=2 * tiles * _padded(E, f["BLOCK_E"]) * hh)
    for t in ("x", "y"):  # once for W·wdᵀ, once for the blend
        fwd.read(t, 2 * S, S)
    fwd.read("local weights", tiles * 2 * W, 2 * W)
    fwd.read("global_up weight", tiles * W, W)
    fwd.read("hg partials", tiles * n_g * H * 4, B * n_g * H * 4)
    fwd.write("z", S)
    fwd.write("h", N * H * p)
    fwd.write("gb, hg", B * (E + H) * 4)
    return [pool, fwd]


def backward_kernels(B, T, E, H, dtype, cfg):
    """The three launches of one backward, with what each reads and writes."""
    p = torch.finfo(dtype).bits // 8
    N, S, W = B * T, B * T * E * p, E * H * p

    d = cfg["backward_dh"]
    rows, tiles = _rows(B, d)
    hh = d["HA"] + (d["HB"] if d["SPLIT_H"] else 0)
    # h comes from the forward: the gate's up-projection and dh = dS·wu are the dots
    dh = Kernel("backward_dh", tiles, 4 * N * E * H + 2 * B * E * H, 4 * rows * _padded(E, d["BLOCK_E"]) * hh,
                _unit(d, dtype), flops_vector=2 * tiles * _padded(E, d["BLOCK_E"]) * hh)
    for t in ("x", "y", "dz"):
        dh.read(t, S)
    dh.read("h", N * H * p)
    dh.read("local_up weight", tiles * W, W)
    dh.read("global_up weight", tiles * W, W)  # (Σ_tile dS)·wgu, vector-matrix
    dh.read("gb, hg", tiles * E * 4, B * (E + H) * 4)
    dh.write("dh_pre", N * H * p)
    dh.write("dG partials", tiles * E * 4)
    dh.read("dG partials", tiles * E * 4)  # the program's own row, read back for the vector-matrix product
    for t in ("dbias partials", "dhg partials"):
        dh.write(t, tiles * H * 4)
    dh.read("mask", B * T * MASK_BYTES)
    dh.write("count partials", tiles * 4)

    w = cfg["backward"]
    n_e, splits = w["grid"]
    rows_w, tiles_w = _rows(B, w)
    hh = w["HA"] + (w["HB"] if w["SPLIT_H"] else 0)
    part = splits * E * H * 4
    # dots per tile: the gate's h·wuᵀ, dh·wd, the global term (mask / count · dhg)·wgd, dSᵀ·h, dh_preᵀ·W
    dw = Kernel("backward", n_e * splits, 8 * N * E * H + 2 * B * E * H, 10 * rows_w * n_e * w["BLOCK_E"] * hh,
                _unit(w, dtype))
    for t in ("x", "y", "dz"):
        dw.read(t, S)
    for t in ("h", "dh_pre"):  # every E chunk reads the whole N×H buffer
        dw.read(t, n_e * N * H * p, N * H * p)
    dw.read("local weights", n_e * splits * 2 * w["BLOCK_E"] * H * p, 2 * W)
    dw.read("global_down weight", n_e * splits * w["BLOCK_E"] * H * p, W)
    dw.read("gb, hg", n_e * tiles_w * (w["BLOCK_E"] + H) * 4, B * (E + H) * 4)
    n_dh = d["n_t_tiles"]  # each tile sums its sequence's backward_dh partials of dhg and the count
    dw.read("dhg partials", n_e * tiles_w * n_dh * H * 4, tiles * H * 4)
    dw.read("count partials", n_e * tiles_w * n_dh * 4, tiles * 4)
    dw.read("mask", n_e * B * T * MASK_BYTES, B * T * MASK_BYTES)
    for t in ("dx", "dy"):
        dw.write(t, S)
    for t in ("dwu partials", "dwd partials"):
        dw.write(t, part)

    fz = cfg["finalize"]
    n_f = fz["grid"][0]
    # the global gradients: dGᵀ·hg and dhgᵀ·g on tensor cores, sequences padded to BLOCK_B
    fin = Kernel("finalize", n_f, 4 * B * E * H, 4 * _padded(B, fz["BLOCK_B"]) * n_f * fz["BLOCK_E"] * fz["H_PAD"],
                 _unit(fz, dtype))
    for t in ("dwu partials", "dwd partials"):
        fin.read(t, part)
    fin.read("dbias partials", tiles * H * 4)
    fin.read("dG partials", tiles * E * 4)
    fin.read("dhg partials", n_f * tiles * H * 4, tiles * H * 4)  # every E chunk sums them again
    fin.read("gb, hg", n_f * B * H * 4, B * (E + H) * 4)
    fin.read("g", B * E * 4)
    fin.write("parameter gradients", 4 * W + (2 * H + 2 * E) * p)
    return [dh, dw, fin]


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
    """Rows {pass, kernel, programs, waves, unit, l2, hbm, flops_*, time_us, bound} and S in bytes."""
    B, T, E = SHAPES[shape]
    H = E // 4
    cfg = launch_config(B, T, E, H, dtype, n_sm)
    S = B * T * E * (torch.finfo(dtype).bits // 8)
    rows = []
    for name, kernels in (("forward", forward_kernels(B, T, E, H, dtype, cfg)),
                          ("backward", backward_kernels(B, T, E, H, dtype, cfg))):
        for k, hbm in zip(kernels, hbm_bytes(kernels)):
            t = k.seconds(hbm, n_sm)
            rows.append({"pass": name, "kernel": k.name, "programs": k.programs, "waves": k.programs / n_sm,
                         "unit": k.unit, "l2": k.l2_bytes, "hbm": hbm, "flops_useful": k.flops_useful,
                         "flops_executed": k.flops_executed, "flops_vector": k.flops_vector,
                         "time_us": t["time"] * 1e6, "bound": t["bound"]})
    return rows, S


def totals(rows, S):
    """Per pass: launches, HBM and L2 bytes in units of S, modelled time in µs."""
    out = {}
    for name in ("forward", "backward"):
        sel = [r for r in rows if r["pass"] == name]
        out[name] = {"hbm_S": sum(r["hbm"] for r in sel) / S, "l2_S": sum(r["l2"] for r in sel) / S,
                     "launches": len(sel), "time_us": sum(r["time_us"] for r in sel)}
    return out


def as_json() -> dict:
    """{shape: {dtype: {pass: {"time_us", "launches", "hbm_S", "l2_S", "kernels": [rows]}}}}."""
    out = {}
    for shape in SHAPES:
        for dname, dtype in DTYPES.items():
            rows, S = model(shape, dtype)
            out.setdefault(shape, {})[dname] = {
                name: dict(t, kernels=[{k: v for k, v in r.items() if k != "pass"} for r in rows if r["pass"] == name])
                for name, t in totals(rows, S).items()}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    if parser.parse_args(argv).json:
        print(json.dumps(as_json(), indent=1))
        return
    for dname, dtype in DTYPES.items():
        for shape, (B, T, E) in SHAPES.items():
            rows, S = model(shape, dtype)
            print(f"\n{shape} B={B} T={T} E={E} H={E // 4} {dname}: S = {S / 1e6:.1f} MB, {N_SM} SMs, "
                  f"cache model {L2_MODEL_BYTES / 2**20:.0f} MiB")
            print(f"{'pass':9}{'kernel':17}{'programs':>9}{'waves':>7}{'unit':>7}{'L2 MB':>8}{'HBM MB':>8}"
                  f"{'L2/S':>7}{'HBM/S':>7}{'GFLOP useful':>13}{'dots':>7}{'vector':>8}{'µs':>7}  bound")
            for r in rows:
                print(f"{r['pass']:9}{r['kernel']:17}{r['programs']:>9}{r['waves']:>7.2f}{r['unit']:>7}"
                      f"{r['l2'] / 1e6:>8.1f}{r['hbm'] / 1e6:>8.1f}{r['l2'] / S:>7.2f}{r['hbm'] / S:>7.2f}"
                      f"{r['flops_useful'] / 1e9:>13.3f}{r['flops_executed'] / 1e9:>7.3f}"
                      f"{r['flops_vector'] / 1e9:>8.3f}{r['time_us']:>7.2f}  {r['bound']}")
            for name, t in totals(rows, S).items():
                print(f"{name}: {t['launches']} launches, HBM {t['hbm_S']:.2f} S, L2 {t['l2_S']:.2f} S, "
                      f"modelled {t['time_us']:.1f} µs")


if __name__ == "__main__":
    main()
