"""Profile one forward and one backward of the AIF op per shape with torch.profiler.

    python benchmarks/profile_op.py --out DIR [--shapes mbert-b32-t128,...] [--backends triton,torch]

Writes ``DIR/profile.md``: per shape, backend and pass, every GPU kernel (the
fused ``_aif_*`` Triton kernels and the torch glue kernels around them) with its
launches and device time, and the top-level torch ops the pass called. On a
machine without a GPU (``--device cpu``, for trying the script) the table lists
the torch ops by CPU time instead, at the small CPU shapes.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from bench_utils import CPU_SHAPES, GPU_SHAPES
from dlfa_kernels import AIF, aif

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def make_case(shape, dtype, device):
    """Parameters, x, y, a padding mask (rows of random length, one all padding when B > 1) and dz."""
    B, T, E = shape
    gen = torch.Generator().manual_seed(0)
    module = AIF(E, 4).to(device, dtype)
    params = [p.detach().requires_grad_() for p in module.parameters()]
    x, y, dz = (torch.randn(B, T, E, generator=gen).to(device, dtype) for _ in range(3))
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    if B > 1:
        lengths[-1] = 0
    mask = (torch.arange(T)[None] < lengths[:, None]).long().to(device)
    return params, x.requires_grad_(), y.requires_grad_(), mask, dz


TORCH_OPS = ("aten::", "dlfa::")


def _outer_op(event) -> str | None:
    """Namespace ("aten"/"dlfa") of the nearest enclosing torch op, None at top level."""
    parent = event.cpu_parent
    while parent is not None and not parent.name.startswith(TORCH_OPS):
        parent = parent.cpu_parent
    return None if parent is None else parent.name.split("::")[0]


def summarize_events(prof, on_gpu: bool) -> tuple[list[dict], list[dict]]:
    """(device rows: kernel name, calls, µs; op rows: torch ops at top level or directly inside
    a ``dlfa::`` op (the glue around the kernels), calls, µs of CPU time)."""
    kernels = defaultdict(lambda: [0, 0.0])
    ops = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == DeviceType.CUDA:
            kernels[e.name][0] += 1
            kernels[e.name][1] += e.time_range.elapsed_us()
        elif e.name.startswith(TORCH_OPS) and _outer_op(e) in (None, "dlfa"):
            ops[e.name][0] += 1
            ops[e.name][1] += e.cpu_time_total

    def rows(table):
        return sorted(({"name": k, "calls": c, "us": us} for k, (c, us) in table.items()), key=lambda r: -r["us"])

    return (rows(kernels) if on_gpu else []), rows(ops)


def profile_pass(run, on_gpu: bool):
    """Profile one call of ``run`` (after it already ran once to compile); returns its event rows."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        out = run()
        if on_gpu:
            torch.cuda.synchronize()
    return out, summarize_events(prof, on_gpu)


def profile_shape(shape, dtype, backend: str, device: str) -> dict:
    """{"forward": (kernels, ops), "backward": (kernels, ops)} for one shape and backend."""
    on_gpu = device == "cuda"
    params, x, y, mask, dz = make_case(shape, dtype, device)

    def forward():
        return aif(x, y, mask, *params, backend=backend)

    for _ in range(2):  # JIT-compile and warm up both passes outside the profile
        forward().backward(dz)
    z, fwd = profile_pass(forward, on_gpu)
    _, bwd = profile_pass(lambda: z.backward(dz), on_gpu)
    return {"forward": fwd, "backward": bwd}


def kind(kernel_name: str) -> str:
    return "fused" if kernel_name.startswith("_aif") else "glue"


def markdown(results: list[dict], header: str) -> str:
    lines = [f"# AIF op profile — {header}", "",
             "One profiled call per pass after two warm-up calls; padding mask on (one all-padding row). "
             "Device µs per kernel from torch.profiler (CUDA activity); `fused` = the project's Triton "
             "kernels, `glue` = torch kernels around them. Ops: torch ops at top level or directly inside a "
             "`dlfa::` op (the glue), with their CPU µs.", ""]
    for r in results:
        for which in ("forward", "backward"):
            kernels, ops = r["passes"][which]
            title = f"## {r['shape']} {r['dtype']} backend={r['backend']}: {which}"
            lines += [title, ""]
            if kernels:
                total = sum(k["us"] for k in kernels)
                lines += [f"{sum(k['calls'] for k in kernels)} kernel launches, {total:.1f} µs of device time.", "",
                          "| kernel | kind | calls | µs | share |", "|---|---|---:|---:|---:|"]
                lines += [f"| `{k['name'][:90]}` | {kind(k['name'])} | {k['calls']} | {k['us']:.1f} | "
                          f"{k['us'] / total:.0%} |" for k in kernels]
                lines.append("")
            lines += ["| torch op | calls | CPU µs |", "|---|---:|---:|"]
            lines += [f"| `{o['name']}` | {o['calls']} | {o['us']:.1f} |" for o in ops]
            lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for profile.md")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shapes", help="comma-separated shape names (default: all for the device)")
    p.add_argument("--dtype", choices=list(DTYPES), default=None, help="default bf16 on cuda, fp32 on cpu")
    p.add_argument("--backends", default=None, help="comma-separated: triton,torch on cuda (default); torch on cpu")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA GPU")
    known = GPU_SHAPES if args.device == "cuda" else CPU_SHAPES
    names = args.shapes.split(",") if args.shapes else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"unknown shape(s) {unknown} for {args.device}; known: {list(known)}")
    dtype_name = args.dtype or ("bf16" if args.device == "cuda" else "fp32")
    backends = (args.backends or ("triton,torch" if args.device == "cuda" else "torch")).split(",")

    results = []
    for name in names:
        for backend in backends:
            passes = profile_shape(known[name], DTYPES[dtype_name], backend, args.device)
            results.append({"shape": name, "dtype": dtype_name, "backend": backend, "passes": passes})
            print(f"profiled {name} {dtype_name} {backend}", flush=True)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.md").write_text(markdown(results, f"{device}, torch {torch.__version__}"))
    print(f"wrote {out / 'profile.md'}")


if __name__ == "__main__":
    main()
