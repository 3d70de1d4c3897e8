"""Results of training runs: the per-language table, results.json, the layer-sweep heatmap."""
from __future__ import annotations

import json
from pathlib import Path


def setting_name(fusion_layer) -> str:
    return "baseline" if fusion_layer is None else f"layer {fusion_layer}"


def format_table(results: list[dict]) -> str:
    """Languages as rows, one column per run (baseline / fusion layer), then the mean over non-source languages."""
    langs = list(results[0]["scores"])
    metric = results[0]["metric"]
    names = [setting_name(r["fusion_layer"]) for r in results]
    width = max(9, *(len(n) for n in names))
    lines = [f"{metric:<10}" + "".join(f"{n:>{width + 2}}" for n in names)]
    for lang in langs:
        lines.append(f"{lang:<10}" + "".join(f"{r['scores'][lang]:>{width + 2}.4f}" for r in results))
    lines.append(f"{'mean(zs)':<10}" + "".join(f"{r['mean_non_source']:>{width + 2}.4f}" for r in results))
    return "\n".join(lines)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def sweep_table(results: list[dict]) -> dict:
    """{"metric", "languages", "settings", "scores": [[score per setting] per language]}."""
    langs = list(results[0]["scores"])
    return {
        "task": results[0]["task"],
        "metric": results[0]["metric"],
        "languages": langs,
        "settings": [setting_name(r["fusion_layer"]) for r in results],
        "scores": [[r["scores"][lang] for r in results] for lang in langs],
        "mean_non_source": [r["mean_non_source"] for r in results],
    }


def plot_heatmap(table: dict, path: Path) -> None:
    """Languages × settings heatmap of the metric, the best setting per language outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scores = np.array(table["scores"], dtype=float)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(table["settings"]) + 2), 0.45 * len(table["languages"]) + 1.8))
    im = ax.imshow(scores, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(table["settings"])), table["settings"], rotation=45, ha="right")
    ax.set_yticks(range(len(table["languages"])), table["languages"])
    for i, row in enumerate(scores):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7,
                    color="black" if v > scores.mean() else "white",
                    fontweight="bold" if j == int(np.argmax(row)) else "normal")
    fig.colorbar(im, ax=ax, label=table["metric"])
    ax.set_title(f"{table['task']}: {table['metric']} by language and fusion layer")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
