"""Statistics over seeds: mean ± std per setting and language, paired differences to the baseline.

Input: one dict per training run (one setting, one seed)::

    {"setting": "layer5", "seed": 0, "scores": {"en": 0.84, "de": 0.71, ...},
     "source_langs": ["en"], "encoder": ..., "task": ..., "metric": ..., "eval_split": ...}

Rules (also in the ``notes`` of every summary, where they bite):

- Scores are higher-is-better; a seed "improved" when setting − baseline > 0.
- Standard deviations are over seeds with ``ddof=1``; with fewer than 2 values the std is NaN.
- The paired t-test p-value and the bootstrap interval need at least 3 paired seeds
  (``MIN_TEST_SEEDS``): with 2, the t-test has one degree of freedom and the "95 %"
  bootstrap interval is just the two differences' range, so both are NaN and a note says
  why. Below 5 paired seeds (``ROUGH_BELOW``) they are marked rough (``"rough": true``,
  ``~`` before them in the tables).
- The transfer gap of a run is the mean of its source-language scores minus its zero-shot
  mean, the transfer ratio the zero-shot mean over that source mean; both are summarised and
  paired like a language. For the gap lower is better: a seed "improved" when its gap narrowed.
- A NaN score (e.g. a constant prediction's Spearman; also a language a run did not
  score) is never averaged in: it is left out of that language's mean, and a seed
  with a NaN on either side is dropped from that language's pairing. The zero-shot mean of a run is NaN when any of its
  zero-shot languages is NaN, so that every zero-shot mean covers the same languages.
- Differences pair only the seeds both the setting and the baseline have; the
  others are listed.
- The 95 % interval is ``scipy.stats.bootstrap`` (BCa) of the mean paired difference
  with a fixed generator seed, so the same results give the same interval; when all
  paired differences are equal the interval is that value.
"""
from __future__ import annotations

import inspect
import logging
import math
import warnings

import numpy as np

logger = logging.getLogger(__name__)

NAN = float("nan")
BOOTSTRAP_SEED = 0
N_RESAMPLES = 9999
MIN_TEST_SEEDS = 3
ROUGH_BELOW = 5
ZERO_SHOT = "zero-shot"
UNTRAINED = "untrained"  # dlfa-train's setting of a bi-encoder scored without training
GAP = "transfer gap"
RATIO = "transfer ratio"
# summary rows besides the languages, and the entry key each is stored under
AGGREGATES = {ZERO_SHOT: "zero_shot", GAP: "transfer_gap", RATIO: "transfer_ratio"}


def _check_results(results: list[dict]) -> None:
    if not isinstance(results, (list, tuple)) or not results:
        raise ValueError("summarize needs a non-empty list of run results")
    seen = set()
    for i, run in enumerate(results):
        if not isinstance(run, dict):
            raise TypeError(f"result {i} must be a dict, got {type(run).__name__}")
        missing = [k for k in ("setting", "seed", "scores", "source_langs") if k not in run]
        if missing:
            raise ValueError(f"result {i} lacks the key(s) {missing}")
        if isinstance(run["seed"], bool) or not isinstance(run["seed"], (int, np.integer)):
            raise TypeError(f"result {i}: seed must be an int, got {run['seed']!r}")
        if not isinstance(run["scores"], dict) or not run["scores"]:
            raise ValueError(f"result {i}: scores must be a non-empty dict of language -> score")
        key = (run["setting"], int(run["seed"]))
        if key in seen:
            raise ValueError(f"two results for setting {key[0]!r} and seed {key[1]}")
        seen.add(key)
    sources = {tuple(sorted(run["source_langs"])) for run in results}
    if len(sources) > 1:
        raise ValueError(f"runs disagree on the source languages: {sorted(sources)}")


def _stats(values: list[float]) -> dict:
    """mean, std (ddof=1) and n of the finite values."""
    finite = [v for v in values if math.isfinite(v)]
    n = len(finite)
    return {"mean": float(np.mean(finite)) if n else NAN,
            "std": float(np.std(finite, ddof=1)) if n >= 2 else NAN,
            "n": n}


def _bootstrap_ci(diffs: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    if len(diffs) < MIN_TEST_SEEDS:
        return NAN, NAN
    if np.all(diffs == diffs[0]):
        return float(diffs[0]), float(diffs[0])
    generator = np.random.default_rng(BOOTSTRAP_SEED)
    # scipy ≥ 1.15 calls the generator argument ``rng``; older releases ``random_state``
    seed_arg = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = stats.bootstrap((diffs,), np.mean, n_resamples=N_RESAMPLES, confidence_level=0.95,
                             method="BCa", **{seed_arg: generator}).confidence_interval
    return float(ci.low), float(ci.high)


def _paired(setting: dict, baseline: dict, seeds: list[int], lower_is_better: bool = False) -> dict:
    """Paired difference setting − baseline over ``seeds``, dropping seeds with a NaN on either side;
    p-value and interval from ``MIN_TEST_SEEDS`` paired seeds on, ``rough`` below ``ROUGH_BELOW``."""
    from scipy import stats

    used = [s for s in seeds if math.isfinite(setting[s]) and math.isfinite(baseline[s])]
    a = np.array([setting[s] for s in used], dtype=float)
    b = np.array([baseline[s] for s in used], dtype=float)
    diffs = a - b
    p_value = NAN
    if len(used) >= MIN_TEST_SEEDS:
        with warnings.catch_warnings():  # identical differences: scipy warns of precision loss
            warnings.simplefilter("ignore")
            p_value = float(stats.ttest_rel(a, b).pvalue)
    low, high = _bootstrap_ci(diffs)
    return {**_stats(list(diffs)), "p_value": p_value, "ci_low": low, "ci_high": high,
            "rough": MIN_TEST_SEEDS <= len(used) < ROUGH_BELOW,
            "improved": int(np.sum(diffs < 0 if lower_is_better else diffs > 0)), "seeds": used,
            "dropped_nan_seeds": [s for s in seeds if s not in used]}


def _difference(name: str, runs: dict, base: dict, columns: list[str], notes: list[str]) -> dict:
    """Paired differences of one setting's runs to the baseline's, per column; appends notes."""
    common = sorted(set(runs) & set(base))
    entry = {"common_seeds": common,
             "seeds_without_baseline": sorted(set(runs) - set(base)),
             "baseline_seeds_without_setting": sorted(set(base) - set(runs)),
             "scores": {}}
    if entry["seeds_without_baseline"] or entry["baseline_seeds_without_setting"]:
        notes.append(f"{name}: paired with the baseline over the common seeds {common} only "
                     f"(setting alone: {entry['seeds_without_baseline']}, "
                     f"baseline alone: {entry['baseline_seeds_without_setting']})")
    for lang in columns:
        entry["scores"][lang] = _paired({s: runs[s][lang] for s in common}, {s: base[s][lang] for s in common}, common,
                                        lower_is_better=lang == GAP)
    for row, key in AGGREGATES.items():
        entry[key] = entry["scores"].pop(row)
    n = entry["zero_shot"]["n"]
    if n < 2:
        notes.append(f"{name}: fewer than 2 paired seeds, so no std, p-value or interval")
    elif n < MIN_TEST_SEEDS:
        notes.append(f"{name}: only {n} paired seeds, so no p-value or interval (a paired t-test on 2 seeds has one "
                     f"degree of freedom, and a bootstrap interval of 2 differences is just their range)")
    elif n < ROUGH_BELOW:
        notes.append(f"{name}: {n} paired seeds, fewer than {ROUGH_BELOW}: p-values and intervals are rough (~)")
    return entry


def summarize(results: list[dict], baseline: str | None = "baseline") -> dict:
    """Summary of runs over seeds (JSON-serialisable; unavailable statistics are NaN).

    ``baseline`` names the setting the others are compared with; None (or a name
    without runs) gives no paired differences, and a note says so.

    Returns ``{"baseline", "languages", "source_langs", "zero_shot_languages",
    "encoder"/"task"/"metric"/"eval_split" (when the runs give them), "settings",
    "differences", "notes"}`` where ``settings[name]`` holds ``seeds``,
    ``scores[lang]`` = {mean, std, n, per_seed} and ``zero_shot`` likewise, and
    ``gate_mean[lang]`` likewise (the mean gate M, how much of the last layer the fusion takes;
    only for settings whose runs report gate statistics),
    ``transfer_gap`` and ``transfer_ratio`` likewise (source mean − zero-shot mean, zero-shot mean / source mean),
    ``differences[name]`` (every setting but the baseline) holds ``common_seeds``,
    ``seeds_without_baseline``, ``baseline_seeds_without_setting``, and for each
    language, ``zero_shot``, ``transfer_gap`` and ``transfer_ratio``: {mean, std, n, p_value, ci_low, ci_high,
    rough, improved, seeds, dropped_nan_seeds}. Per-seed maps are keyed by ``str(seed)``.
    """
    _check_results(results)
    languages = list(dict.fromkeys(lang for run in results for lang in run["scores"]))
    source = sorted(results[0]["source_langs"])
    zero_shot_langs = [lang for lang in languages if lang not in source]
    notes = [] if zero_shot_langs else ["every language is a source language: no zero-shot mean"]

    per_setting: dict[str, dict[int, dict]] = {}
    gate_means: dict[str, dict[int, dict]] = {}  # setting -> seed -> lang -> mean gate M (fused runs only)
    for run in results:
        gates = {lang: float(g.get("gate_mean", NAN)) for lang, g in (run.get("gates") or {}).items() if g}
        if gates:
            gate_means.setdefault(run["setting"], {})[int(run["seed"])] = gates
        scores = {lang: float(run["scores"].get(lang, NAN)) for lang in languages}
        zs = [scores[lang] for lang in zero_shot_langs]
        scores[ZERO_SHOT] = float(np.mean(zs)) if zs and all(map(math.isfinite, zs)) else NAN
        src = [scores[lang] for lang in source if lang in scores]
        source_mean = float(np.mean(src)) if src else NAN
        scores[GAP] = source_mean - scores[ZERO_SHOT]
        scores[RATIO] = scores[ZERO_SHOT] / source_mean if source_mean else NAN
        per_setting.setdefault(run["setting"], {})[int(run["seed"])] = scores
    # the untrained bi-encoder (what you get for free) first, then the baseline, else first-seen order
    names = sorted(per_setting, key=lambda n: (n != UNTRAINED, n != baseline))
    if UNTRAINED in per_setting:
        notes.append(f"{UNTRAINED}: the encoder as a plain bi-encoder scored with no training steps (what you get "
                     "for free), the same for every seed")

    columns = languages + list(AGGREGATES)
    settings = {}
    for name in names:
        runs = per_setting[name]
        seeds = sorted(runs)
        entry = {"seeds": seeds, "scores": {}}
        for lang in columns:
            values = [runs[s][lang] for s in seeds]
            stats = {**_stats(values), "per_seed": {str(s): runs[s][lang] for s in seeds}}
            nan_seeds = [s for s in seeds if not math.isfinite(runs[s][lang])]
            if nan_seeds and lang not in (GAP, RATIO) and (lang != ZERO_SHOT or zero_shot_langs):
                notes.append(f"{name}, {lang}: NaN in seed(s) {nan_seeds}, left out of the mean and the pairing")
            entry["scores"][lang] = stats
        if len(seeds) < 2:
            notes.append(f"{name}: {len(seeds)} seed only, so no std over seeds")
        for row, key in AGGREGATES.items():
            entry[key] = entry["scores"].pop(row)
        gates = gate_means.get(name)  # a seed without gate statistics counts as NaN
        if gates:
            entry["gate_mean"] = {}
            for lang in languages:
                values = {s: gates.get(s, {}).get(lang, NAN) for s in seeds}
                entry["gate_mean"][lang] = {**_stats(list(values.values())),
                                            "per_seed": {str(s): v for s, v in values.items()}}
        settings[name] = entry

    differences = {}
    if baseline is None:
        notes.append("no baseline setting given: no paired differences")
    elif baseline not in per_setting:
        notes.append(f"no runs of the baseline setting {baseline!r}: no paired differences")
    for name in names:
        if name != baseline and baseline in per_setting:
            differences[name] = _difference(name, per_setting[name], per_setting[baseline], columns, notes)

    meta = {}
    for key in ("encoder", "task", "metric", "eval_split"):
        found = {str(run[key]) for run in results if run.get(key) is not None}
        if found:
            meta[key] = found.pop() if len(found) == 1 else sorted(found)
    return {"baseline": baseline, "languages": languages, "source_langs": source,
            "zero_shot_languages": zero_shot_langs, **meta,
            "settings": settings, "differences": differences, "notes": notes}


def _cell(entry: dict, row: str) -> dict:
    """One row's statistics of a setting or difference entry: a language or one of ``AGGREGATES``."""
    return entry[AGGREGATES[row]] if row in AGGREGATES else entry["scores"][row]


def _pm(stats: dict, signed: bool = False) -> str:
    if not math.isfinite(stats["mean"]):
        return "n/a"
    mean = f"{stats['mean']:+.4f}" if signed else f"{stats['mean']:.4f}"
    return mean if not math.isfinite(stats["std"]) else f"{mean} ± {stats['std']:.4f}"


def _p(stats: dict) -> str:
    p = stats["p_value"]
    if not math.isfinite(p):
        return "n/a"
    return ("~" if stats.get("rough") else "") + ("<0.001" if p < 1e-3 else f"{p:.3f}")


def _ci(stats: dict) -> str:
    if not math.isfinite(stats["ci_low"]):
        return "n/a"
    return ("~" if stats.get("rough") else "") + f"[{stats['ci_low']:+.4f}, {stats['ci_high']:+.4f}]"


def summary_tables(summary: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The summary's tables as (title, header, rows of cells): mean ± std per row and setting, the mean gate
    of fused settings, then per setting the paired differences to the baseline (``format_summary`` prints
    them, ``dlfa_models.reports.tables`` writes them as Markdown)."""
    names = list(summary["settings"])
    rows = summary_rows(summary)

    metric = summary.get("metric", "score")
    header = [f"{metric} (mean ± std over seeds)"] + [
        f"{n} (n={len(summary['settings'][n]['seeds'])})" for n in names]
    table = [[lang + (" (source)" if lang in summary["source_langs"] else "")] +
             [_pm(_cell(summary["settings"][n], lang)) for n in names] for lang in rows]
    tables = [("", header, table)]

    gated = [n for n in names if "gate_mean" in summary["settings"][n]]
    if gated:
        header = ["gate M (mean ± std over seeds)"] + gated
        table = [[lang] + [_pm(summary["settings"][n]["gate_mean"][lang]) for n in gated]
                 for lang in summary["languages"]]
        tables.append(("", header, table))

    base = summary["baseline"]
    for name, diff in summary["differences"].items():
        head = ["language", "Δ mean ± std", "p (paired t)", "95% CI (bootstrap)", "improved"]
        body = [_difference_row(lang, _cell(diff, lang)) for lang in rows]
        tables.append((f"{name} − {base}, paired over seeds {diff['common_seeds']}:", head, body))
    return tables


def summary_legend(summary: dict) -> list[str]:
    """What the transfer rows mean (when the summary has them), then the notes."""
    lines = []
    if GAP in summary_rows(summary):
        lines.append(f"{GAP}: source − zero-shot mean (lower is better: 'improved' counts seeds whose gap "
                     f"narrowed); {RATIO}: zero-shot mean / source.")
    return lines


def format_summary(summary: dict) -> str:
    """Plain-text tables: mean ± std per language and setting, the mean gate of fused settings, then
    paired differences to the baseline; the legend and the notes."""
    lines = []
    for i, (title, header, body) in enumerate(summary_tables(summary)):
        lines += ([""] if i else []) + ([title] if title else []) + _grid(header, body)
    legend = summary_legend(summary)
    if legend:
        lines += [""] + legend
    if summary["notes"]:
        lines += ["", "Notes:"] + [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines)


def _difference_row(lang: str, d: dict) -> list[str]:
    return [lang, _pm(d, signed=True), _p(d), _ci(d), f"{d['improved']}/{d['n']}"]


def summary_rows(summary: dict) -> list[str]:
    """The rows of the summary tables: the languages, the zero-shot mean, the transfer gap and ratio
    (the last two only in summaries that have them)."""
    extra = [row for row in AGGREGATES if AGGREGATES[row] in next(iter(summary["settings"].values()))]
    return summary["languages"] + extra


def _grid(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in body]


def plot_difference_heatmap(summary: dict, path, title: str) -> bool:
    """Languages (and the zero-shot mean) × settings heatmap of the mean difference to the baseline.

    Diverging colour map centred at 0 (blue: better than the baseline), each cell
    annotated with the difference and ``k/n`` seeds improved. Returns False, writing
    nothing and logging a warning, when the summary has no difference to draw (no
    baseline runs, or no other setting); True once the file is written. Raises
    ImportError when matplotlib is missing.
    """
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("plot_difference_heatmap needs matplotlib (pip install matplotlib)") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["differences"])
    if not names:
        logger.warning("no paired differences to the baseline (no baseline runs or no other setting): %s not drawn",
                       path)
        return False
    rows = summary["languages"] + [ZERO_SHOT]
    cells = [[_cell(summary["differences"][n], lang) for n in names] for lang in rows]
    means = np.array([[c["mean"] for c in row] for row in cells], dtype=float)
    limit = np.nanmax(np.abs(means)) if np.isfinite(means).any() else 0.0
    limit = limit if limit > 0 else 1e-6

    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 2.5), 0.42 * len(rows) + 1.8))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="lightgray")  # gray: no finite paired seed
    image = ax.imshow(np.ma.masked_invalid(means), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [lang + (" (source)" if lang in summary["source_langs"] else "") for lang in rows])
    ax.axhline(len(rows) - 1.5, color="black", lw=1.2)  # separates the zero-shot mean row
    for i, row in enumerate(cells):
        for j, c in enumerate(row):
            text = "n/a" if not math.isfinite(c["mean"]) else f"{c['mean']:+.3f}\n{c['improved']}/{c['n']}"
            strong = math.isfinite(c["mean"]) and abs(c["mean"]) > 0.6 * limit
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if strong else "black")
    fig.colorbar(image, ax=ax, label=f"mean difference to {summary['baseline']}")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
