"""Compile every AIF kernel configuration ahead of time for a GPU target, with no GPU.

Run as a script (not under the interpreter): ``python tests/aot_compile.py 90 80``.
Prints one JSON line per compiled configuration, with its shared-memory use.
"""
import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "0"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from dlfa_kernels import aif_kernels as k  # noqa: E402

WIDTHS = (40, 96, 384, 768, 1024)
FP32_POINTERS = {"MASK", "INV_COUNT", "G_OUT", "GB", "DG_PART", "DGS", "DWU_PART", "DWD_PART"}
SCALAR_NAMES = {"T", "E", "H", "N"}
TRITON_DTYPE = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


def signature(fn, dtype: str, int_type: str) -> dict:
    sig = {}
    for p in fn.params:
        if p.is_constexpr:
            sig[p.name] = "constexpr"
        elif p.name.isupper() and p.name not in SCALAR_NAMES:
            sig[p.name] = "*fp32" if p.name in FP32_POINTERS else f"*{dtype}"
        else:
            sig[p.name] = int_type
    return sig


def configurations():
    """(kernel, dtype, int type, constexprs, options) for every launch the launchers can make."""
    seen = set()
    for dtype in TRITON_DTYPE:
        precisions = ("ieee", "tf32") if dtype == torch.float32 else ("ieee",)
        yield k._aif_pool_kernel, dtype, "i32", {"BLOCK_T": 32, "BLOCK_E": 64}, {"num_warps": 4}
        for E in WIDTHS:
            for precision in precisions:
                c = dict(k.kernel_config(E, E // 4, dtype), DOT_PRECISION=precision)
                key = (dtype, tuple(sorted(c.items())))
                if key in seen:
                    continue
                seen.add(key)
                opts = {"num_warps": c["num_warps"], "num_stages": c["num_stages"]}
                main = {n: c[n] for n in ("BLOCK_M", "BLOCK_E", "H_PAD", "DOT_PRECISION")}
                dw = dict(main, BLOCK_E=c["BLOCK_E_DW"])
                # strides past 2**31 elements arrive as int64 arguments
                for int_type in ("i32", "i64") if E == 1024 and precision == "ieee" else ("i32",):
                    yield k._aif_forward_kernel, dtype, int_type, main, opts
                    yield k._aif_backward_dh_kernel, dtype, int_type, main, opts
                    yield k._aif_backward_kernel, dtype, int_type, dw, opts


def main(capabilities):
    for cc in capabilities:
        target = GPUTarget("cuda", cc, 64 if cc >= 90 else 32)
        for fn, dtype, int_type, constexprs, options in configurations():
            src = ASTSource(
                fn=fn,
                signature=signature(fn, TRITON_DTYPE[dtype], int_type),
                constexprs={(fn.arg_names.index(n),): v for n, v in constexprs.items()},
            )
            compiled = triton.compile(src, target=target, options=dict(options, num_stages=options.get("num_stages", 2)))
            assert compiled.asm["cubin"], fn.__name__
            print(json.dumps({
                "sm": cc, "kernel": fn.__name__, "dtype": TRITON_DTYPE[dtype], "ints": int_type,
                **{k_: v for k_, v in constexprs.items()}, **options,
                "shared_bytes": compiled.metadata.shared, "cubin_bytes": len(compiled.asm["cubin"]),
            }), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [90, 80])
