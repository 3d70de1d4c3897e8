"""Paper-ready tables of a sweep and of a seeds summary, written with pandas as CSV and Markdown.

``sweep.csv`` / ``sweep.md``: languages (then the zero-shot mean, the transfer gap and ratio)
× settings, the best setting per row in bold in the Markdown. ``summary.csv``: one row per
setting and table row with the mean, std and n over seeds and the paired difference to the
baseline (mean, std, n, p-value, bootstrap interval, seeds improved, rough); ``summary.md``:
the tables ``format_summary`` prints, as Markdown.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .summary import AGGREGATES, GAP, summary_legend, summary_rows, summary_tables

SWEEP_AGGREGATES = {"mean (zero-shot)": "mean_non_source", GAP: "transfer_gap", "transfer ratio": "transfer_ratio"}
DIFFERENCE_FIELDS = ("mean", "std", "n", "p_value", "ci_low", "ci_high", "improved", "rough")


def sweep_frame(table: dict) -> pd.DataFrame:
    """Rows: languages, then the aggregates ``table`` has; columns: settings; float scores."""
    rows = dict(zip(table["languages"], table["scores"]))
    rows.update({label: table[key] for label, key in SWEEP_AGGREGATES.items() if key in table})
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=table["settings"])
    frame.index.name = table["metric"]
    return frame


def _bold_best(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells formatted to 4 decimals, the best of each row in bold (lowest for the transfer gap)."""
    out = frame.map(lambda v: "n/a" if not math.isfinite(v) else f"{v:.4f}")
    for label, row in frame.iterrows():
        if row.notna().any():
            best = row.idxmin() if label == GAP else row.idxmax()
            out.loc[label, best] = f"**{out.loc[label, best]}**"
    return out


def write_sweep_tables(table: dict, out: Path) -> None:
    """``out/sweep.csv`` and ``out/sweep.md`` from a ``report.sweep_table`` dict."""
    frame = sweep_frame(table)
    frame.to_csv(out / "sweep.csv", float_format="%.6f")
    title = f"{table['task']}: {table['metric']} per language and fusion setting"
    markdown = _bold_best(frame).to_markdown(colalign=["left"] + ["right"] * frame.shape[1])
    (out / "sweep.md").write_text(f"## {title}\n\n{markdown}\n", encoding="utf-8")


def summary_frame(summary: dict) -> pd.DataFrame:
    """One row per setting and table row (language or aggregate): its statistics over seeds and, for every
    setting but the baseline, ``delta_*``: the paired difference to the baseline."""
    records = []
    for name, entry in summary["settings"].items():
        diff = summary["differences"].get(name)
        for row in summary_rows(summary):
            key = AGGREGATES.get(row)
            stats = entry[key] if key else entry["scores"][row]
            record = {"setting": name, "row": row, "source": row in summary["source_langs"],
                      "mean": stats["mean"], "std": stats["std"], "n": stats["n"]}
            if diff is not None:
                d = diff[key] if key else diff["scores"][row]
                record.update({f"delta_{k}": d.get(k) for k in DIFFERENCE_FIELDS})
            records.append(record)
    frame = pd.DataFrame.from_records(records)
    counts = [c for c in ("n", "delta_n", "delta_improved") if c in frame]
    return frame.astype(dict.fromkeys(counts, "Int64"))  # counts stay integers beside the baseline's blanks


def write_summary_tables(summary: dict, out: Path, title: str) -> None:
    """``out/summary.csv`` (``summary_frame``) and ``out/summary.md`` (the printed tables, the legend and notes)."""
    summary_frame(summary).to_csv(out / "summary.csv", index=False, float_format="%.6f")
    parts = [f"## {title}"]
    for heading, header, body in summary_tables(summary):
        frame = pd.DataFrame(body, columns=header)
        parts += ([f"### {heading.rstrip(':')}"] if heading else []) + [
            frame.to_markdown(index=False, colalign=["left"] + ["right"] * (len(header) - 1))]
    parts += summary_legend(summary)
    if summary["notes"]:
        parts.append("Notes:\n\n" + "\n".join(f"- {note}" for note in summary["notes"]))
    (out / "summary.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
