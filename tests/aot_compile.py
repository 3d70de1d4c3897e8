"""Compile every AIF kernel launch ahead of time for a GPU target, with no GPU, specialised as launched.

Run as a script (not under the interpreter)::

    python tests/aot_compile.py [90 80] [--sets ci,gpu-tests,benchmarks,mma] [--full] [--count] [--only REGEX]

The launchers run on empty CPU tensors of real shapes (never touched, so a tensor past 2**31
elements costs no memory) with Triton's ``JITFunction.run`` replaced by a recorder; each recorded
argument list is specialised the way Triton's JIT specialises a real launch (integer 1 -> constant,
integers and pointers divisible by 16 -> ``tt.divisibility`` 16, integers past 2**31 -> i64),
compiled for the target, and its cubin read with the ``cuobjdump`` Triton ships.

Sets of launch cases (default: all four; ``--full`` adds every tile height, see ``full_jobs``):

- ``ci``: the token-tiled kernels for every dtype at E = 384, 768, 1024 with their widest tiles and
  bf16 with mBERT-base's tiles (sm_90 and sm_80); the other kernels (bf16, fp32) and the
  interpreter tests' odd widths (fp16) on sm_90;
- ``gpu-tests``: every launch of ``tests/test_aif_gpu.py`` (its shapes and dtypes, the tensors
  past 2**31 elements in both layouts, the grid past 65,535 programs), on sm_90, the GPU machine's;
- ``benchmarks``: every launch of ``benchmarks/`` (its GPU shapes, bf16 and fp32, padding mask and
  none), on sm_90;
- ``mma``: mBERT-base (B=32, T=128, E=768, H=192, bf16, padding mask) on sm_90 and sm_80 and the
  long shape (B=16, T=512, E=1024, H=256) on sm_90, the cases the tensor-core checks read.

Prints a header line ``{"triton": ..., "numpy": ..., "compilations": N}``, then one JSON line per
distinct compiled kernel: its launch name, the cases that launch it with their grids, registers,
stack, spill instructions (STL/LDL), shared memory, the dot products of its Triton GPU IR and how
many of them run on MMA units, and a census of its SASS opcodes. ``--count`` prints only N.
``--only REGEX`` keeps the compilations whose label (``sm_90 backward bf16 E=1024 i32``: target,
launch, dtype, E, index width) it matches, to iterate on one kernel in seconds.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

os.environ["TRITON_INTERPRET"] = "0"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "benchmarks")]  # test_aif_gpu's and bench_utils' shapes

import numpy  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

import bench_utils  # noqa: E402
import test_aif_gpu  # noqa: E402
from dlfa_kernels import aif_kernels as k  # noqa: E402

N_SM = 132  # H100 / H200
MAIN_WIDTHS = ((384, 96), (768, 192), (1024, 256))  # (E, H = E/4)
TEST_WIDTHS = ((40, 10), (96, 24))  # the odd widths of the interpreter tests
MBERT, LARGE = (32, 128), (64, 512)  # (B, T): mBERT-base's own tiles; the widest tiles (most registers)
FULL_BATCHES = (MBERT, (16, 512), LARGE, (64, 16), (64, 32), (3, 17))  # every tile height
HEAVY = ("forward", "backward_dh", "backward")  # the token-tiled kernels, where registers run out
SETS = ("ci", "gpu-tests", "benchmarks", "mma")
TYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.int64: "i64",
              torch.bool: "i1"}
CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"


@dataclass(frozen=True)
class Case:
    """One forward and one backward as a caller launches them.

    layout "e_outer": x and y are (B, E, T) tensors transposed, so E is strided by T.
    """
    name: str
    B: int
    T: int
    E: int
    H: int
    dtype: torch.dtype
    mask: Optional[torch.dtype] = torch.int64
    layout: str = "contiguous"
    tf32: bool = False


@dataclass(frozen=True)
class Job:
    """Which launches of a case to compile for which targets (kernels None: every launch)."""
    case: Case
    targets: tuple
    kernels: Optional[tuple] = None
    wide_ints: bool = False


def record_launches(case: Case, cc: int) -> list[dict]:
    """Every kernel launch of one forward and one backward on sm_<cc>, as the launchers make it.

    The launchers and ``_launch`` run for real; Triton's ``JITFunction.run``, where a launch would
    compile and start the kernel, records instead: launch name, kernel, arguments, keyword arguments
    (constexprs and options), grid.
    """
    launches, current = [], []
    real_launch, real_traits, real_run = k._launch, k._device_traits, JITFunction.run

    def launch(name, *args, **kwargs):
        current.append(name)
        try:
            return real_launch(name, *args, **kwargs)
        finally:
            current.pop()

    def run(fn, *args, grid, warmup, **kwargs):
        launches.append({"launch": current[-1] if current else fn.__name__, "fn": fn, "args": args,
                         "kwargs": kwargs, "grid": grid})

    B, T, E, H, dtype = case.B, case.T, case.E, case.H, case.dtype
    tf32 = torch.backends.cuda.matmul.allow_tf32
    k._launch, k._device_traits, JITFunction.run = launch, (lambda device: (N_SM, cc >= 90)), run
    torch.backends.cuda.matmul.allow_tf32 = case.tf32
    try:
        if case.layout == "e_outer":
            x, y = (torch.empty(B, E, T, dtype=dtype).transpose(1, 2) for _ in range(2))
        else:
            x, y = (torch.empty(B, T, E, dtype=dtype) for _ in range(2))
        dz = torch.empty(B, T, E, dtype=dtype)
        mask = None if case.mask is None else torch.empty(B, T, dtype=case.mask)
        params = [torch.empty(s, dtype=dtype) for s in ((H, E), (H,), (E, H), (E,), (H, E), (H,), (E, H), (E,))]
        _, g = k.aif_forward(x, y, mask, params)
        k.aif_backward(dz, x, y, mask, params, g)
    finally:
        k._launch, k._device_traits, JITFunction.run = real_launch, real_traits, real_run
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return launches


def specialise(fn, args, kwargs, wide_ints=False):
    """Signature, constants, attributes and options as Triton's JIT derives them from a launch's arguments.

    ``wide_ints``: every integer as i64 with no divisibility (``--full``'s stand-in for huge tensors).
    """
    bound = dict(zip(fn.arg_names, args), **{n: v for n, v in kwargs.items() if n in fn.arg_names})
    options = {n: v for n, v in kwargs.items() if n not in fn.arg_names}
    signature, constants, attrs = {}, {}, {}
    for i, p in enumerate(fn.params):
        a = bound[p.name] if p.name in bound else p.default
        plain = getattr(p, "do_not_specialize", False)
        if p.is_constexpr:
            signature[p.name], constants[p.name] = "constexpr", a
        elif isinstance(a, torch.Tensor):
            signature[p.name] = "*" + TYPE_NAMES[a.dtype]
            if a.data_ptr() % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(a, bool):
            signature[p.name] = "i1"
        elif wide_ints:
            signature[p.name] = "i64"
        elif a == 1 and not plain:
            signature[p.name], constants[p.name] = "constexpr", 1
        else:
            signature[p.name] = "i32" if -2**31 <= a < 2**31 else "i64"
            if a % 16 == 0 and not plain:
                attrs[(i,)] = [["tt.divisibility", 16]]
    return signature, constants, attrs, options


def _case(prefix, B, T, E, H, dtype, mask=torch.int64, **kw) -> Case:
    mask_name = "mask" if mask is not None else "nomask"
    return Case(f"{prefix} {B}x{T}x{E}/{H} {TYPE_NAMES[dtype]} {mask_name}", B, T, E, H, dtype, mask, **kw)


def ci_jobs() -> list[Job]:
    jobs = []
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for E, H in MAIN_WIDTHS:
            shapes = (LARGE, MBERT) if dtype == torch.bfloat16 and E == 768 else (LARGE,)
            for B, T in shapes:
                case = _case("ci", B, T, E, H, dtype)
                jobs.append(Job(case, (90, 80), HEAVY))
                if dtype != torch.float16:
                    jobs.append(Job(case, (90,)))
        if dtype == torch.float16:
            jobs += [Job(_case("ci", 3, 17, E, H, dtype), (90,)) for E, H in TEST_WIDTHS]
    return jobs


def gpu_test_jobs() -> list[Job]:
    """tests/test_aif_gpu.py: every shape and dtype with a padding mask, the huge tensors, the huge grid."""
    t = test_aif_gpu
    jobs = [Job(_case("gpu-test", B, T, E, E // r, dtype), (90,))
            for B, T, E, r in t.SHAPES for dtype in t.DTYPES]
    B, T, E = t.HUGE
    jobs += [Job(_case(f"gpu-test {layout}", B, T, E, E // t.REDUCTION, torch.bfloat16, None, layout=layout), (90,))
             for layout in t.LAYOUTS]
    B, T, E = t.MANY_PROGRAMS
    jobs.append(Job(_case("gpu-test", B, T, E, E // t.REDUCTION, torch.float32), (90,)))
    return jobs


def benchmark_jobs() -> list[Job]:
    """benchmarks/: the GPU shapes in bf16 and fp32, with the padding mask and without (AIF(E, 4))."""
    return [Job(_case(f"bench {name}", B, T, E, E // 4, dtype, mask), (90,))
            for name, (B, T, E) in bench_utils.GPU_SHAPES.items()
            for dtype in (torch.bfloat16, torch.float32) for mask in (torch.int64, None)]


def mma_jobs() -> list[Job]:
    return [Job(Case("mbert-base", 32, 128, 768, 192, torch.bfloat16), (90, 80)),
            Job(Case("long", 16, 512, 1024, 256, torch.bfloat16), (90,))]


def full_jobs() -> list[Job]:
    """Every launch of every shape in FULL_BATCHES, with and without a mask, fp32 also as tf32, bf16 at
    E = 1024 also with 64-bit integers, on both targets (about 1100 compilations)."""
    jobs = []
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for E, H in MAIN_WIDTHS + TEST_WIDTHS:
            for B, T in FULL_BATCHES:
                for mask in (torch.int64, None):
                    for tf32 in (False, True) if dtype == torch.float32 else (False,):
                        case = _case("full", B, T, E, H, dtype, mask, tf32=tf32)
                        jobs.append(Job(case, (90, 80)))
                        if E == 1024 and dtype == torch.bfloat16:
                            jobs.append(Job(case, (90, 80), HEAVY, wide_ints=True))
    return jobs


JOBS = {"ci": ci_jobs, "gpu-tests": gpu_test_jobs, "benchmarks": benchmark_jobs, "mma": mma_jobs,
        "full": full_jobs}


def label(config: dict) -> str:
    """``sm_90 backward bf16 E=1024 i32``: what ``--only`` matches and KNOWN_SPILLS keys on."""
    ints = "i64" if "i64" in config["sig"].values() else "i32"
    return f"sm_{config['cc']} {config['launch']} {config['dtype']} E={config['E']} {ints}"


def configurations(sets=SETS, targets=(90, 80)) -> list[dict]:
    """Distinct compilations of the jobs of ``sets`` on ``targets``, each with the cases that launch it."""
    seen = {}
    for set_name in sets:
        for job in JOBS[set_name]():
            for cc in job.targets:
                if cc not in targets:
                    continue
                for launch in record_launches(job.case, cc):
                    name, fn, grid = launch["launch"], launch["fn"], launch["grid"]
                    if job.kernels is not None and name not in job.kernels:
                        continue
                    sig, consts, attrs, options = specialise(fn, launch["args"], launch["kwargs"], job.wide_ints)
                    if callable(grid):
                        grid = grid({**dict(zip(fn.arg_names, launch["args"])), **launch["kwargs"]})
                    key = json.dumps([cc, fn.__name__, sig, sorted(consts.items()), sorted(attrs),
                                      sorted(options.items())], default=str)
                    config = seen.setdefault(key, {
                        "cc": cc, "launch": name, "module": fn.fn.__module__, "kernel": fn.__name__, "sig": sig,
                        "consts": consts, "attrs": attrs, "options": options,
                        "dtype": TYPE_NAMES[job.case.dtype], "E": job.case.E, "cases": {}})
                    config["cases"].setdefault(job.case.name, [int(n) for n in grid])
    return list(seen.values())


SASS_OPCODE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")
DOT_OP = re.compile(r"=\s*(tt\.dot|ttng\.warp_group_dot)\s.*->\s*tensor<[^,>]*,\s*(#[\w.]+)")


def dot_units(ttgir: str) -> tuple[int, int]:
    """(dot products, those on MMA units) of a kernel's Triton GPU IR.

    wgmma (``ttng.warp_group_dot``) and a ``tt.dot`` whose result has an MMA layout (nvidia_mma) run
    on tensor cores; a ``tt.dot`` into a blocked layout is lowered to FMA instructions.
    """
    layouts = dict(re.findall(r"^(#[\w.]+)\s*=\s*(.*)$", ttgir, flags=re.M))
    dots = mma = 0
    for op, layout in DOT_OP.findall(ttgir):
        dots += 1
        mma += op == "ttng.warp_group_dot" or "mma" in layouts.get(layout, layout)
    return dots, mma


def resource_usage(cubin: bytes) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([str(CUOBJDUMP), "--dump-resource-usage", f.name], capture_output=True, text=True,
                             check=True).stdout
        sass = subprocess.run([str(CUOBJDUMP), "-sass", f.name], capture_output=True, text=True, check=True).stdout
    usage = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", out))
    census = Counter(SASS_OPCODE.findall(sass))
    return {"registers": int(usage["REG"]), "stack_bytes": int(usage["STACK"]), "local_bytes": int(usage["LOCAL"]),
            "static_shared_bytes": int(usage["SHARED"]),
            # register spills are the local-memory stores and loads in the machine code
            "spill_stores": census["STL"], "spill_loads": census["LDL"],
            "sass": dict(sorted(census.items()))}


def compile_one(config: dict) -> dict:
    cc = config["cc"]
    fn = getattr(importlib.import_module(config["module"]), config["kernel"])
    src = ASTSource(fn=fn, signature=config["sig"], constexprs=config["consts"], attrs=config["attrs"])
    compiled = triton.compile(src, target=GPUTarget("cuda", cc, 32), options=config["options"])
    shown = {n: v for n, v in config["consts"].items()
             if n.isupper() and not (isinstance(v, int) and v == 1 and n.startswith(("stride", "E")))}
    dots, mma_dots = dot_units(compiled.asm["ttgir"])
    ints = "i64" if "i64" in config["sig"].values() else "i32"
    return {
        "sm": cc, "launch": config["launch"], "kernel": config["kernel"], "dtype": config["dtype"], "E": config["E"],
        "ints": ints,
        **shown, **config["options"],
        "cases": {c: {"grid": g, "programs": math.prod(g)} for c, g in config["cases"].items()},
        "dots": dots, "mma_dots": mma_dots,
        **resource_usage(compiled.asm["cubin"]), "shared_bytes": compiled.metadata.shared,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", type=int, default=[90, 80], help="compute capabilities (default 90 80)")
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    p.add_argument("--full", action="store_true", help="add every tile height, mask/no mask, tf32, 64-bit ints")
    p.add_argument("--count", action="store_true", help="print the number of distinct compilations only")
    p.add_argument("--only", metavar="REGEX", help="keep the compilations whose label (e.g. "
                   "'sm_90 backward bf16 E=1024 i32') the regular expression matches")
    args = p.parse_args(argv)
    try:
        only = re.compile(args.only) if args.only is not None else None
    except re.error as e:
        p.error(f"--only: not a regular expression: {e}")
    sets = [s for s in args.sets.split(",") if s] + (["full"] if args.full else [])
    unknown = sorted(set(sets) - set(JOBS))
    if unknown:
        p.error(f"--sets: unknown set(s) {unknown}; known: {', '.join(SETS)}")
    configs = configurations(sets, tuple(args.targets))
    if only is not None:
        configs = [c for c in configs if only.search(label(c))]
    if args.count:
        print(len(configs))
        return
    print(json.dumps({"triton": triton.__version__, "numpy": numpy.__version__, "compilations": len(configs)}),
          flush=True)
    workers = int(os.environ.get("AOT_WORKERS", os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for row in pool.map(compile_one, configs, chunksize=4):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
