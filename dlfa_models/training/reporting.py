"""The reports of a ``dlfa-train`` command: the table on stdout, and with several settings the sweep files,
with ``--seeds`` the summary files, with ``--curve_steps`` the learning-curves plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import Task
from ..reports.report import format_table, plot_heatmap, sweep_table, try_plot
from .arguments import CROSS_ENCODER, Arguments
from .json_files import read_json, write_json
from .planning import parse_seeds, run_folder


def _mean_over_seeds(results: list[dict]) -> list[dict]:
    """One pseudo-result per setting, its scores averaged over seeds (for the score heatmap)."""
    by_setting: dict[str, list[dict]] = {}
    for r in results:
        by_setting.setdefault(r["setting"], []).append(r)
    merged = []
    for runs in by_setting.values():
        langs = list(runs[0]["scores"])
        merged.append({**runs[0], "scores": {k: float(np.mean([r["scores"][k] for r in runs])) for k in langs},
                       "mean_non_source": float(np.mean([r["mean_non_source"] for r in runs])), "gates": {}})
    return merged


def print_dev_scores(task: Task, results: list[dict]) -> None:
    """The source-dev scores of runs that scored no language (--do_eval without --do_predict)."""
    rows = [(r["setting"] + ("" if r.get("seed") is None else f" seed {r['seed']}"),
             r.get("dev_metrics", {}).get(f"eval_{task.metric}")) for r in results]
    rows = [(name, value) for name, value in rows if value is not None]
    if rows:
        print(f"\n{task.name}: source-language dev ({','.join(results[0]['source_langs'])}) {task.metric}")
        width = max(len(name) for name, _ in rows)
        print("\n".join(f"{name:<{width}}  {value:.4f}" for name, value in rows))


def write_reports(args: Arguments, task: Task, results: list[dict]) -> None:
    """The table on stdout; with several settings the sweep files, with --seeds the summary files."""
    m, p, t = args
    out = Path(t.output_dir)
    if not results:
        return
    if not results[0]["scores"]:
        print_dev_scores(task, results)
        return
    seeds = parse_seeds(p.seeds)
    table_runs = _mean_over_seeds(results) if seeds else results
    scored = f"trained on {','.join(results[0]['source_langs'])}" if t.do_train else m.model_name_or_path
    print(f"\n{task.name}: {scored}; {p.eval_split} {task.metric} per language"
          + (f", mean over seeds {','.join(map(str, seeds))}" if seeds else ""))
    print(format_table(table_runs))
    if len(table_runs) > 1:
        from ..reports.tables import write_sweep_tables

        table = sweep_table(table_runs)
        write_json(out / "sweep.json", table)
        write_sweep_tables(table, out)
        drawn = try_plot(plot_heatmap, table, out / "sweep.png")
        print(f"\nsweep table: {out / 'sweep.json'} (also sweep.md, sweep.csv)"
              + (f", heatmap: {out / 'sweep.png'}" if drawn else ""))
    if seeds:
        from ..reports.summary import format_summary, plot_difference_heatmap, summarize
        from ..reports.tables import write_summary_tables

        summary = summarize(results, baseline="baseline" if any(r["setting"] == "baseline" for r in results) else None)
        write_json(out / "summary.json", summary)
        print("\n" + format_summary(summary))
        title = f"{task.name} {p.eval_split}, {m.model_name_or_path}, seeds {','.join(map(str, seeds))}"
        write_summary_tables(summary, out, title)
        drawn = try_plot(plot_difference_heatmap, summary, out / "summary.png", title)
        print(f"\nsummary: {out / 'summary.json'} (also summary.md, summary.csv)"
              + (f", difference heatmap: {out / 'summary.png'}" if drawn else ""))


def write_curves_plot(args: Arguments, task: Task, results: list[dict]) -> None:
    """curves.png in --output_dir: per setting the runs' learning curves, mean ± std over seeds."""
    from .curves import CURVES, plot_curves

    m, p, t = args
    out, seeds = Path(t.output_dir), parse_seeds(p.seeds)
    curves: dict[str, list[dict]] = {}
    for r in results:
        path = run_folder(out, task, r["setting"], r["seed"], seeds is not None,
                          r.get("architecture", CROSS_ENCODER)) / CURVES
        if path.is_file():
            curves.setdefault(r["setting"], []).append(read_json(path))
    if curves:
        title = f"{task.name}, {m.model_name_or_path}" + (f", seeds {','.join(map(str, seeds))}" if seeds else "")
        if try_plot(plot_curves, curves, out / "curves.png", title):
            print(f"learning curves: {out / 'curves.png'}")
