"""Which units each AIF kernel computes on, read from its machine code: compile every launch of one
forward and one backward at a given shape as the JIT specialises it (``tests/aot_compile.py``), for a
GPU target, with no GPU, and count its instructions.

Run as a script (not under the interpreter):
``python tests/sass_census.py [--sm 90] [--shape mbert-base|long|B,T,E] [--dtype bf16|fp16|fp32]``.
Prints one JSON line per launch: kernel, grid programs, registers, stack and spill instructions (as
``aot_compile.resource_usage`` reads them), and counts of HGMMA (wgmma, sm_90), HMMA (mma.sync), FFMA
and FMUL instructions in its SASS.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from math import prod
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "0"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

import aot_compile  # noqa: E402

SHAPES = {"mbert-base": (32, 128, 768), "long": (16, 512, 1024)}  # (B, T, E), H = E / 4
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
OPCODES = ("HGMMA", "HMMA", "FFMA", "FMUL")


def sass(cubin: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([str(aot_compile.CUOBJDUMP), "-sass", f.name], capture_output=True, text=True,
                              check=True).stdout


def census(sm: int, B: int, T: int, E: int, dtype: torch.dtype, mask_dtype=torch.int64):
    """One row per launch of a forward and a backward at (B, T, E), H = E / 4, on sm_<sm>."""
    rows = []
    for name, args, constexprs, options in aot_compile.record_launches(B, T, E, E // 4, dtype, mask_dtype, sm):
        sig, consts, attrs = aot_compile.specialise(name, args, constexprs)
        src = ASTSource(fn=aot_compile.k.KERNELS[name], signature=sig, constexprs=consts, attrs=attrs)
        compiled = triton.compile(src, target=GPUTarget("cuda", sm, 64 if sm >= 90 else 32), options=options)
        code = sass(compiled.asm["cubin"])
        grid = aot_compile.k.launch_config(B, T, E, E // 4, dtype, aot_compile.N_SM, sm >= 90)[name]["grid"]
        rows.append({
            "sm": sm, "kernel": name, "B": B, "T": T, "E": E, "dtype": str(dtype).replace("torch.", ""),
            "programs": prod(grid), **aot_compile.resource_usage(compiled.asm["cubin"]),
            **{op: len(re.findall(rf"\b{op}(?:\.\S+)?\s", code)) for op in OPCODES},
        })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sm", type=int, default=90)
    parser.add_argument("--shape", default="mbert-base", help="mbert-base, long, or B,T,E")
    parser.add_argument("--dtype", default="bf16", choices=list(DTYPES))
    a = parser.parse_args(argv)
    B, T, E = SHAPES[a.shape] if a.shape in SHAPES else map(int, a.shape.split(","))
    for row in census(a.sm, B, T, E, DTYPES[a.dtype]):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
