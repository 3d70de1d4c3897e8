"""Results of training runs: setting names, the per-language table, the transfer gap, sweep heatmap."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

import numpy as np

logger = logging.getLogger(__name__)


def setting_name(fusion_layer: Optional[int], gate_init: Optional[float] = None) -> str:
    """"baseline", "layer5", or "layer5-init0.9" for a fusion started at the mix 0.9."""
    if fusion_layer is None:
        return "baseline"
    return f"layer{fusion_layer}" + ("" if gate_init is None else f"-init{gate_init:g}")


def format_table(results: list[dict]) -> str:
    """Languages as rows; per run a score column (and a gate column, the mean gate, for fused runs);
    last row: the mean over non-source languages."""
    langs = list(results[0]["scores"])
    metric = results[0]["metric"]
    columns = []  # (header, [cell per language], bottom cell)
    for r in results:
        columns.append((r["setting"], [f"{r['scores'][lang]:.4f}" for lang in langs], f"{r['mean_non_source']:.4f}"))
        gates = r.get("gates") or {}
        if any(gates.get(lang) for lang in langs):
            cells = [f"{gates[lang]['gate_mean']:.3f}" if gates.get(lang) else "-" for lang in langs]
            columns.append(("gate", cells, ""))
    width = max(9, *(len(c[0]) for c in columns)) + 2
    lines = [f"{metric:<10}" + "".join(f"{h:>{width}}" for h, _, _ in columns)]
    for i, lang in enumerate(langs):
        lines.append(f"{lang:<10}" + "".join(f"{cells[i]:>{width}}" for _, cells, _ in columns))
    lines.append(f"{'mean(zs)':<10}" + "".join(f"{bottom:>{width}}" for _, _, bottom in columns))
    return "\n".join(lines)


def transfer_figures(scores: dict, sources: list, zero_shot_mean: float) -> dict:
    """The transfer gap of one run: ``source_mean`` (mean score of the scored source languages),
    ``transfer_gap`` = source_mean − zero-shot mean, ``transfer_ratio`` = zero-shot mean / source_mean
    (NaN when a side is missing or NaN)."""
    values = [scores[lang] for lang in sources if lang in scores]
    source = float(np.mean(values)) if values else math.nan
    return {"source_mean": source, "transfer_gap": source - zero_shot_mean,
            "transfer_ratio": zero_shot_mean / source if source else math.nan}


def sweep_table(results: list[dict]) -> dict:
    """{"task", "metric", "languages", "settings", "scores": [[score per setting] per language],
    "mean_non_source", "transfer_gap", "transfer_ratio": [per setting]}."""
    langs = list(results[0]["scores"])
    transfer = [transfer_figures(r["scores"], r["source_langs"], r["mean_non_source"]) for r in results]
    return {
        "task": results[0]["task"],
        "metric": results[0]["metric"],
        "languages": langs,
        "settings": [r["setting"] for r in results],
        "scores": [[r["scores"][lang] for r in results] for lang in langs],
        "mean_non_source": [r["mean_non_source"] for r in results],
        "transfer_gap": [t["transfer_gap"] for t in transfer],
        "transfer_ratio": [t["transfer_ratio"] for t in transfer],
    }


def try_plot(plot, *args) -> bool:
    """Draw a figure; without matplotlib, warn and go on (the JSON files hold the same numbers)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logger.warning("matplotlib is not installed: %s not drawn (pip install matplotlib)", args[1])
        return False
    plot(*args)
    return True


def heatmap_rows(table: dict) -> tuple[list[str], "np.ndarray"]:
    """The heatmap's row labels and (rows, settings) scores: the languages, then the zero-shot mean."""
    return (table["languages"] + ["mean (zero-shot)"],
            np.array(table["scores"] + [table["mean_non_source"]], dtype=float))


def plot_heatmap(table: dict, path: Path) -> None:
    """Languages × settings heatmap of the metric, the best setting per language in bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, scores = heatmap_rows(table)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(table["settings"]) + 2), 0.45 * len(labels) + 1.8))
    im = ax.imshow(scores, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(table["settings"])), table["settings"], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.axhline(len(labels) - 1.5, color="white", lw=1.5)  # separates the zero-shot mean row
    middle = np.nanmean(scores) if np.isfinite(scores).any() else 0.0  # text colour: dark on bright cells
    for i, row in enumerate(scores):
        best = int(np.nanargmax(row)) if np.isfinite(row).any() else -1
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7,
                    color="black" if v > middle else "white",
                    fontweight="bold" if j == best else "normal")
    fig.colorbar(im, ax=ax, label=table["metric"])
    ax.set_title(f"{table['task']}: {table['metric']} by language and fusion setting")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
