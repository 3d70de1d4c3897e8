"""Turn a ``pytest benchmarks/ --benchmark-json=FILE`` result into a markdown table and a PNG chart.

    python benchmarks/report.py FILE [--out benchmarks/results]

Writes ``<out>/<date>-<device>.md`` and ``.png``: per pass, dtype, shape and mask,
each provider's median time, its speed-up over eager, over torch.compile and over
torch.compile(mode="max-autotune"), GB/s against the minimum bytes of the performance
model in docs/design.md (GPU runs), bytes saved for backward and peak memory.
"""
from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

# "-graph": the same pass replayed from a CUDA graph (no host launch overhead)
PROVIDER_ORDER = ["eager", "compile", "compile-graph", "compile-max-autotune", "torch", "fused", "fused-graph"]


def ordered(providers) -> list[str]:
    """The known providers in their order, then any other (a provider added later still shows)."""
    known = [p for p in PROVIDER_ORDER if p in providers]
    return known + sorted(set(providers) - set(known))


def _median_s(bench: dict) -> float:
    info = bench["extra_info"]
    return info["gpu_median_ms"] / 1e3 if "gpu_median_ms" in info else bench["stats"]["median"]


def _mb(n) -> str:
    return "–" if n is None else f"{n / 1e6:.1f}"


def op_rows(data: dict) -> list[dict]:
    """One row per (pass, dtype, shape, mask, provider), with ratios inside its group."""
    groups = defaultdict(dict)
    for b in data["benchmarks"]:
        info = b["extra_info"]
        if "which" in info:
            groups[(info["which"], info["dtype"], info["shape"], info["masked"])][info["provider"]] = b
    rows = []
    for key in sorted(groups):
        by_provider = groups[key]
        eager = by_provider.get("eager")
        compiled = by_provider.get("compile")
        autotuned = by_provider.get("compile-max-autotune")
        for provider in ordered(by_provider):
            b = by_provider[provider]
            t = _median_s(b)
            info = b["extra_info"]
            rows.append({
                "which": key[0], "dtype": key[1], "shape": key[2], "mask": "yes" if key[3] else "no",
                "provider": provider, "ms": t * 1e3,
                "vs_eager": _median_s(eager) / t if eager else None,
                "vs_compile": _median_s(compiled) / t if compiled else None,
                "vs_autotune": _median_s(autotuned) / t if autotuned else None,
                "gbps": info.get("gbps"), "bw_frac": info.get("bandwidth_fraction"),
                "saved": info.get("saved_bytes"), "peak": info.get("peak_bytes"),
            })
    return rows


def model_rows(data: dict) -> list[dict]:
    return [{"provider": b["extra_info"]["provider"], **b["extra_info"]}
            for b in data["benchmarks"] if "tokens_per_s" in b["extra_info"]]


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown(data: dict) -> str:
    meta = data.get("dlfa", {})
    lines = [
        f"# AIF benchmarks — {meta.get('device', '?')}",
        "",
        f"Device {meta.get('device', '?')}, driver {meta.get('driver', '?')}, torch {meta.get('torch', '?')}, "
        f"triton {meta.get('triton', '?')}, {meta.get('date', '?')}. Median times; ratios are speed-ups "
        "(> 1 = faster) over eager, torch.compile (default mode) and torch.compile(mode=\"max-autotune\") "
        "measured in the same run. GB/s counts the minimum bytes (forward: read X, Y, write Z; backward: "
        "read X, Y, dZ, write dX, dY; see docs/design.md); saved = bytes autograd keeps for backward.",
        "",
        "| pass | dtype | shape | mask | provider | ms | × eager | × compile | × max-autotune | GB/s "
        "| of copy BW | saved MB | peak MB |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in op_rows(data):
        lines.append(
            f"| {r['which']} | {r['dtype']} | {r['shape']} | {r['mask']} | {r['provider']} | {r['ms']:.3f} | "
            f"{_fmt(r['vs_eager'], '.2f')} | {_fmt(r['vs_compile'], '.2f')} | {_fmt(r['vs_autotune'], '.2f')} | "
            f"{_fmt(r['gbps'], '.0f')} | "
            f"{_fmt(r['bw_frac'], '.0%')} | {_mb(r['saved'])} | {_mb(r['peak'])} |"
        )
    models = model_rows(data)
    if models:
        lines += ["", "Training step of DLFAForSequenceClassification:", "",
                  "| AIF | B | T | hidden | layers | tokens/s |", "|---|---:|---:|---:|---:|---:|"]
        for m in models:
            lines.append(f"| {m['provider']} | {m['B']} | {m['T']} | {m['hidden']} | {m['layers']} | {m['tokens_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


def chart(data: dict, path: Path) -> None:
    """Speed-up over eager per case, one bar per provider."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = op_rows(data)
    cases = sorted({(r["which"], r["dtype"], r["shape"], r["mask"]) for r in rows})
    providers = ordered({r["provider"] for r in rows})
    lookup = {(r["which"], r["dtype"], r["shape"], r["mask"], r["provider"]): r["vs_eager"] or 0 for r in rows}
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(cases)), 5))
    width = 0.8 / max(1, len(providers))
    for k, p in enumerate(providers):
        ax.bar(np.arange(len(cases)) + k * width, [lookup.get(c + (p,), 0) for c in cases], width, label=p)
    ax.axhline(1, color="gray", lw=0.8)
    ax.set_xticks(np.arange(len(cases)) + 0.4 - width / 2,
                  [f"{w} {d} {s} m={m}" for w, d, s, m in cases], rotation=80, fontsize=6)
    ax.set_ylabel("speed-up over eager")
    meta = data.get("dlfa", {})
    ax.set_title(f"AIF: {meta.get('device', '?')}, torch {meta.get('torch', '?')}, triton {meta.get('triton', '?')}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("json_file")
    p.add_argument("--out", default=str(Path(__file__).with_name("results")))
    args = p.parse_args(argv)
    data = json.loads(Path(args.json_file).read_text())
    meta = data.get("dlfa", {})
    stem = f"{meta.get('date', 'undated')}-{re.sub(r'[^A-Za-z0-9]+', '-', meta.get('device', 'unknown')).strip('-')}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(markdown(data))
    chart(data, out / f"{stem}.png")
    print(f"wrote {out / stem}.md and .png")


if __name__ == "__main__":
    main()
