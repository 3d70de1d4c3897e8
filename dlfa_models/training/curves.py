"""Learning curves: dev scores every N training steps (``curves.json`` per run) and their plot over seeds.

``curves.json``::

    {"every": N, "metric": "spearman", "split": "dev", "source_langs": ["en"], "languages": ["en", "de", ...],
     "points": [{"step": 0, "epoch": 0.0, "scores": {"en": 0.12, "de": 0.08}}, ...]}

Points are taken before the first step, every N steps and at the last step, on the source
dev set and (optionally) the dev sets of the zero-shot languages, with the model being trained
(not the best checkpoint). The file is rewritten after every point, so a resumed run keeps the
points of the steps it resumes from.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from .json_files import read_json, write_json

logger = logging.getLogger(__name__)

CURVES = "curves.json"


class LearningCurve(TrainerCallback):
    """Scores ``datasets`` ({language: (tokenized dataset, metric fn)}) every ``every`` steps with the
    trainer's own prediction loop; set ``trainer`` before training. ``path``: where curves.json goes
    (None on processes other than the main one, which score but do not write)."""

    def __init__(self, every: int, datasets: dict, metric: str, source_langs: list[str], path: Path | None):
        self.every, self.datasets, self.metric, self.path = every, datasets, metric, path
        self.source_langs = source_langs
        self.trainer = None
        self.points: list[dict] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.points = [p for p in _read_points(self.path) if p["step"] <= state.global_step]
        if not any(p["step"] == state.global_step for p in self.points):
            self._score(state)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 or state.global_step >= state.max_steps:
            self._score(state)

    def _score(self, state) -> None:
        scores = {}
        # every DataLoader draws its base seed from the global generator: scoring must leave training's
        # random stream (dropout, the next epoch's order) as it was, so that curves do not change the run
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        # the trainer's compute_metrics is the source dev set's (NER's holds its sentence ids): each curve
        # dataset is scored by its own function instead
        source_metrics, self.trainer.compute_metrics = self.trainer.compute_metrics, None
        try:
            with torch.random.fork_rng(devices=devices):
                for lang, (ds, compute) in self.datasets.items():
                    pred = self.trainer.predict(ds, metric_key_prefix="curve")
                    scores[lang] = compute(pred.predictions, pred.label_ids)[self.metric]
        finally:
            self.trainer.compute_metrics = source_metrics
        self.points.append({"step": state.global_step, "epoch": state.epoch or 0.0, "scores": scores})
        logger.info("step %d: %s", state.global_step, ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        if self.path is not None:
            write_json(self.path, {
                "every": self.every, "metric": self.metric, "split": "dev", "source_langs": self.source_langs,
                "languages": list(self.datasets), "points": self.points})


def _read_points(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    return read_json(path)["points"]


def curve_series(curves: dict) -> dict[str, dict[int, float]]:
    """{"source": {step: mean source-language score}, "zero-shot": {step: mean over the other languages}}
    (the zero-shot series only when the curves have other languages)."""
    sources = set(curves["source_langs"])
    series: dict[str, dict[int, float]] = {"source": {}}
    for point in curves["points"]:
        src = [v for k, v in point["scores"].items() if k in sources]
        zs = [v for k, v in point["scores"].items() if k not in sources]
        series["source"][point["step"]] = float(np.mean(src)) if src else math.nan
        if zs:
            series.setdefault("zero-shot", {})[point["step"]] = float(np.mean(zs))
    return series


def mean_curves(curves_by_setting: dict[str, list[dict]]) -> dict[str, dict[str, dict]]:
    """Per setting and series, over the setting's runs: {"steps", "mean", "std", "n"} at the steps every run has."""
    out = {}
    for setting, runs in curves_by_setting.items():
        out[setting] = {}
        per_run = [curve_series(c) for c in runs]
        for name in per_run[0]:
            if not all(name in s for s in per_run):
                continue
            steps = sorted(set.intersection(*(set(s[name]) for s in per_run)))
            values = np.array([[s[name][step] for step in steps] for s in per_run], dtype=float)
            out[setting][name] = {"steps": steps, "mean": np.mean(values, axis=0).tolist(),
                                  "std": (np.std(values, axis=0, ddof=1) if len(per_run) > 1
                                          else np.full(len(steps), math.nan)).tolist(),
                                  "n": len(per_run)}
    return out


def plot_curves(curves_by_setting: dict[str, list[dict]], path: Path, title: str) -> None:
    """One panel per series (source dev, zero-shot dev mean): per setting its mean over seeds against
    steps, with a ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = mean_curves(curves_by_setting)
    panels = list(dict.fromkeys(name for series in means.values() for name in series))
    metric = next(iter(curves_by_setting.values()))[0]["metric"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for setting, series in means.items():
            if panel not in series:
                continue
            c = series[panel]
            mean, std = np.array(c["mean"]), np.nan_to_num(np.array(c["std"]))
            line, = ax.plot(c["steps"], mean, marker="o", ms=3, label=f"{setting} (n={c['n']})")
            ax.fill_between(c["steps"], mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"dev {metric}")
        ax.set_title(f"{panel} dev" + (" (mean of the languages)" if panel == "zero-shot" else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
