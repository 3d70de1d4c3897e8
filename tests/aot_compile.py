"""Compile every AIF kernel launch ahead of time for a GPU target, with no GPU, specialised as launched.

Run as a script (not under the interpreter): ``python tests/aot_compile.py 90 80 [--full]``.
The launchers run on empty CPU tensors of real shapes with the kernel launch replaced by a
recorder; each recorded argument list is specialised the way Triton's JIT specialises a real
launch (integer 1 -> constant, integers and pointers divisible by 16 -> ``tt.divisibility`` 16),
compiled for the target, and its cubin read with ``cuobjdump --dump-resource-usage``.
Prints one JSON line per distinct compiled kernel: registers, stack, spill instructions (STL/LDL in
the SASS), shared memory.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "0"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from dlfa_kernels import aif_kernels as k  # noqa: E402

N_SM = 132
MAIN_WIDTHS = ((384, 96), (768, 192), (1024, 256))  # (E, H = E/4)
TEST_WIDTHS = ((40, 10), (96, 24))  # the odd widths of the interpreter tests
MBERT, LARGE = (32, 128), (64, 512)  # (B, T): mBERT-base's own tiles; the widest tiles (most registers)
FULL_BATCHES = (MBERT, (16, 512), LARGE, (64, 16), (64, 32), (3, 17))  # every tile height
HEAVY = ("forward", "backward_dh", "backward")  # the token-tiled kernels, where registers run out
TYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.int64: "i64",
              torch.bool: "i1"}
CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"


def record_launches(B, T, E, H, dtype, mask_dtype, cc):
    """(kernel name, args, constexprs, options) of every launch of one forward and one backward on sm_<cc>."""
    launches = []

    def record(name, cfg, *args, **constexprs):
        c = cfg[name]
        constexprs = dict(constexprs, **{n: c[n] for n in k.CONSTEXPRS[name]})
        launches.append((name, args, constexprs, {"num_warps": c["num_warps"], "num_stages": c.get("num_stages", 1)}))

    real_launch, real_traits = k._launch, k._device_traits
    k._launch, k._device_traits = record, (lambda device: (N_SM, cc >= 90))
    try:
        x, y, dz = (torch.empty(B, T, E, dtype=dtype) for _ in range(3))
        mask = None if mask_dtype is None else torch.empty(B, T, dtype=mask_dtype)
        params = [torch.empty(s, dtype=dtype) for s in ((H, E), (H,), (E, H), (E,), (H, E), (H,), (E, H), (E,))]
        _, g = k.aif_forward(x, y, mask, params)
        k.aif_backward(dz, x, y, mask, params, g)
    finally:
        k._launch, k._device_traits = real_launch, real_traits
    return launches


def specialise(name, args, constexprs, wide_ints=False):
    """Signature, constants and attributes as Triton's JIT derives them from these arguments.

    ``wide_ints``: every integer as i64 with no divisibility, as for tensors past 2**31 elements.
    """
    fn = k.KERNELS[name]
    runtime = [p for p in fn.params if p.name not in constexprs]
    assert len(runtime) == len(args), (name, len(runtime), len(args))
    signature, constants, attrs = {}, dict(constexprs), {}
    for p, a in zip(runtime, args):
        index = (fn.arg_names.index(p.name),)
        if isinstance(a, torch.Tensor):
            signature[p.name] = "*" + TYPE_NAMES[a.dtype]
            if a.data_ptr() % 16 == 0:
                attrs[index] = [["tt.divisibility", 16]]
        elif wide_ints:
            signature[p.name] = "i64"
        elif a == 1:
            signature[p.name], constants[p.name] = "constexpr", 1
        else:
            signature[p.name] = "i32" if -2**31 <= a < 2**31 else "i64"
            if a % 16 == 0:
                attrs[index] = [["tt.divisibility", 16]]
    for n in constexprs:
        signature[n] = "constexpr"
    return signature, constants, attrs


def configurations(full: bool = False):
    """Distinct (target, kernel, specialisation, options, dtype name, E, wide ints) to compile.

    Default (the CI test, about 80 compilations): on sm_90 and sm_80 the token-tiled kernels for
    every dtype at E = 384, 768, 1024 with their widest tiles, and bf16 with mBERT-base's tiles; on
    sm_90 also the small kernels (bf16, fp32) and the tests' odd widths (fp16). ``full``: every
    launch of every shape in FULL_BATCHES, with and without a mask, fp32 also as tf32, bf16 at
    E = 1024 also with 64-bit integers, on both targets.
    """
    runs = []
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        for E, H in MAIN_WIDTHS + TEST_WIDTHS:
            if full:
                shapes = FULL_BATCHES
            elif (E, H) in TEST_WIDTHS:
                shapes = ((3, 17),) if dtype == torch.float16 else ()
            else:
                shapes = (LARGE, MBERT) if dtype == torch.bfloat16 and E == 768 else (LARGE,)
            for B, T in shapes:
                for mask_dtype in (torch.int64, None) if full else (torch.int64,):
                    tf32s = (False, True) if dtype == torch.float32 and full else (False,)
                    wide = (False, True) if full and E == 1024 and dtype == torch.bfloat16 else (False,)
                    runs += [(dtype, E, H, B, T, mask_dtype, tf32, w) for tf32 in tf32s for w in wide]
    seen = {}
    for dtype, E, H, B, T, mask_dtype, tf32, wide in runs:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for cc in (90, 80):
            small_ok = cc == 90 and dtype != torch.float16 and (E, H) in MAIN_WIDTHS
            odd_ok = cc == 90 and (E, H) in TEST_WIDTHS
            for name, args, constexprs, options in record_launches(B, T, E, H, dtype, mask_dtype, cc):
                if wide and name not in HEAVY:
                    continue
                if not (full or (name in HEAVY and (E, H) in MAIN_WIDTHS) or (name not in HEAVY and small_ok)
                        or odd_ok):
                    continue
                sig, consts, attrs = specialise(name, args, constexprs, wide)
                key = json.dumps([cc, name, sig, sorted(consts.items()), sorted(attrs), options], default=str)
                seen.setdefault(key, (cc, (name, sig, consts, attrs, options, TYPE_NAMES[dtype], E, wide)))
    torch.backends.cuda.matmul.allow_tf32 = False
    return list(seen.values())


def resource_usage(cubin: bytes) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([str(CUOBJDUMP), "--dump-resource-usage", f.name], capture_output=True, text=True,
                             check=True).stdout
        sass = subprocess.run([str(CUOBJDUMP), "-sass", f.name], capture_output=True, text=True, check=True).stdout
    usage = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", out))
    return {"registers": int(usage["REG"]), "stack_bytes": int(usage["STACK"]), "local_bytes": int(usage["LOCAL"]),
            "static_shared_bytes": int(usage["SHARED"]),
            # register spills are the local-memory stores and loads in the machine code
            "spill_stores": len(re.findall(r"\bSTL(?:\.\S+)?\s", sass)),
            "spill_loads": len(re.findall(r"\bLDL(?:\.\S+)?\s", sass))}


def compile_one(cc, config):
    name, sig, consts, attrs, options, dtype, E, wide = config
    fn = k.KERNELS[name]
    src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
    target = GPUTarget("cuda", cc, 64 if cc >= 90 else 32)
    compiled = triton.compile(src, target=target, options=options)
    shown = {n: v for n, v in consts.items() if not (isinstance(v, int) and v == 1 and n.startswith(("stride", "E")))}
    return {
        "sm": cc, "kernel": fn.__name__, "dtype": dtype, "E": E, "ints": "i64" if wide else "i32",
        **{n: v for n, v in shown.items() if n.isupper()}, **options,
        **resource_usage(compiled.asm["cubin"]), "shared_bytes": compiled.metadata.shared,
    }


def main(capabilities, workers, full=False):
    jobs = [(cc, c) for cc, c in configurations(full) if cc in capabilities]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for row in pool.map(compile_one, *zip(*jobs), chunksize=4):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    targets = [int(a) for a in sys.argv[1:] if a != "--full"] or [90, 80]
    main(targets, workers=int(os.environ.get("AOT_WORKERS", os.cpu_count() or 1)), full="--full" in sys.argv)
