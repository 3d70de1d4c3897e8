"""Statistics over seeds (dlfa_models.reports.summary) on hand-made results with known answers."""
import json
import math
import sys

import pytest

from dlfa_models.reports.summary import format_summary, plot_difference_heatmap, summarize

NAN = float("nan")


def run(setting, seed, scores, source=("en",)):
    return {"setting": setting, "seed": seed, "scores": dict(scores), "source_langs": list(source),
            "encoder": "tiny", "metric": "spearman", "eval_split": "dev"}


def two_settings():
    """Baseline and one fusion setting over seeds 0-2; fusion − baseline in de is 0.01, 0.02, 0.03."""
    base = {0: {"en": 0.8, "de": 0.50, "ru": 0.40},
            1: {"en": 0.9, "de": 0.60, "ru": 0.30},
            2: {"en": 1.0, "de": 0.70, "ru": 0.50}}
    fused = {0: {"en": 0.8, "de": 0.51, "ru": 0.45},
             1: {"en": 0.9, "de": 0.62, "ru": 0.25},
             2: {"en": 1.0, "de": 0.73, "ru": 0.60}}
    return [run("baseline", s, base[s]) for s in base] + [run("layer5", s, fused[s]) for s in fused]


def t_test_p_df2(diffs):
    """Two-sided paired t-test p-value for 3 pairs from the closed form of Student's t CDF at 2 d.o.f.:
    F(t) = 1/2 + t / (2 sqrt(2 + t²)), so p = 1 − |t| / sqrt(2 + t²)."""
    n = len(diffs)
    assert n == 3
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    return 1 - abs(t) / math.sqrt(2 + t * t)


def test_means_and_stds_over_seeds():
    s = summarize(two_settings())
    en = s["settings"]["baseline"]["scores"]["en"]
    assert en["mean"] == pytest.approx(0.9) and en["std"] == pytest.approx(0.1) and en["n"] == 3
    assert en["per_seed"] == {"0": 0.8, "1": 0.9, "2": 1.0}
    assert s["zero_shot_languages"] == ["de", "ru"] and s["source_langs"] == ["en"]
    # zero-shot mean per seed: mean of de and ru; over seeds 0.45, 0.45, 0.60
    zs = s["settings"]["baseline"]["zero_shot"]
    assert [zs["per_seed"][k] for k in "012"] == pytest.approx([0.45, 0.45, 0.60])
    assert zs["mean"] == pytest.approx(0.5) and zs["std"] == pytest.approx(math.sqrt(0.0075))
    assert s["metric"] == "spearman" and s["encoder"] == "tiny" and s["eval_split"] == "dev"
    json.loads(json.dumps(s))


def test_paired_t_test_matches_the_closed_form():
    d = summarize(two_settings())["differences"]["layer5"]
    de = d["scores"]["de"]
    assert de["mean"] == pytest.approx(0.02) and de["std"] == pytest.approx(0.01)
    assert de["p_value"] == pytest.approx(t_test_p_df2([0.01, 0.02, 0.03]), rel=1e-9)
    assert de["improved"] == 3 and de["n"] == 3
    ru = d["scores"]["ru"]
    assert ru["p_value"] == pytest.approx(t_test_p_df2([0.05, -0.05, 0.10]), rel=1e-9)
    assert ru["improved"] == 2
    # en identical in every seed: no improvement, no spread, interval collapses to 0
    en = d["scores"]["en"]
    assert en["mean"] == pytest.approx(0.0, abs=1e-12) and en["improved"] == 0
    assert en["ci_low"] == en["ci_high"] == pytest.approx(0.0, abs=1e-12)


def test_bootstrap_interval_contains_the_mean_and_is_deterministic():
    base = [0.61, 0.58, 0.64, 0.60, 0.57]
    fused = [0.63, 0.57, 0.69, 0.66, 0.58]
    results = ([run("baseline", i, {"en": 0.9, "de": v}) for i, v in enumerate(base)] +
               [run("layer3", i, {"en": 0.9, "de": v}) for i, v in enumerate(fused)])
    first = summarize(results)["differences"]["layer3"]["scores"]["de"]
    second = summarize(results)["differences"]["layer3"]["scores"]["de"]
    assert first["ci_low"] < first["mean"] < first["ci_high"]
    assert first["ci_low"] > min(f - b for f, b in zip(fused, base)) - 1e-12
    assert (first["ci_low"], first["ci_high"]) == (second["ci_low"], second["ci_high"])


def test_nan_score_is_left_out_and_its_seed_unpaired():
    results = two_settings()
    results[4]["scores"]["ru"] = NAN  # layer5, seed 1
    s = summarize(results)
    ru = s["settings"]["layer5"]["scores"]["ru"]
    assert ru["n"] == 2 and ru["mean"] == pytest.approx((0.45 + 0.60) / 2)
    assert math.isnan(ru["per_seed"]["1"])
    paired = s["differences"]["layer5"]["scores"]["ru"]
    assert paired["seeds"] == [0, 2] and paired["dropped_nan_seeds"] == [1] and paired["n"] == 2
    assert paired["mean"] == pytest.approx(0.075)
    # the zero-shot mean of that run is NaN (it would cover fewer languages), dropped likewise
    zs = s["settings"]["layer5"]["zero_shot"]
    assert math.isnan(zs["per_seed"]["1"]) and zs["n"] == 2
    assert s["differences"]["layer5"]["zero_shot"]["dropped_nan_seeds"] == [1]
    # other languages keep all three seeds
    assert s["differences"]["layer5"]["scores"]["de"]["n"] == 3
    assert any("NaN in seed(s) [1]" in note for note in s["notes"])


def test_mismatched_seeds_pair_only_the_common_ones():
    results = ([run("baseline", s, {"en": 1.0, "de": 0.5 + s / 10}) for s in (1, 2, 3, 4)] +
               [run("layer4", s, {"en": 1.0, "de": 0.5 + s / 10 + 0.01 * s}) for s in (0, 1, 2, 3)])
    d = summarize(results)["differences"]["layer4"]
    assert d["common_seeds"] == [1, 2, 3]
    assert d["seeds_without_baseline"] == [0] and d["baseline_seeds_without_setting"] == [4]
    assert d["scores"]["de"]["mean"] == pytest.approx(0.02) and d["scores"]["de"]["n"] == 3


def test_one_seed_gives_nan_spread_and_says_so():
    s = summarize([run("baseline", 0, {"en": 0.9, "de": 0.5}), run("layer5", 0, {"en": 0.9, "de": 0.6})])
    de = s["differences"]["layer5"]["scores"]["de"]
    assert de["mean"] == pytest.approx(0.1) and de["improved"] == 1 and de["n"] == 1
    assert all(math.isnan(de[k]) for k in ("std", "p_value", "ci_low", "ci_high"))
    assert math.isnan(s["settings"]["baseline"]["scores"]["de"]["std"])
    assert any("fewer than 2 paired seeds" in note for note in s["notes"])
    text = format_summary(s)
    assert "n/a" in text and "1/1" in text


def test_without_baseline_there_are_no_differences(tmp_path, caplog):
    s = summarize([run("layer5", 0, {"en": 0.9, "de": 0.5})])
    assert s["differences"] == {} and any("no runs of the baseline" in n for n in s["notes"])
    assert summarize([run("layer5", 0, {"en": 0.9, "de": 0.5})], baseline=None)["notes"] == [
        "layer5: 1 seed only, so no std over seeds", "no baseline setting given: no paired differences"]
    assert summarize([run("layer5", 0, {"en": 0.9})], baseline=None)["notes"][0] == (
        "every language is a source language: no zero-shot mean")
    pytest.importorskip("matplotlib", reason="the heatmap needs matplotlib (the models extra)")
    assert plot_difference_heatmap(s, tmp_path / "diff.png", "t") is False
    assert not (tmp_path / "diff.png").exists() and "not drawn" in caplog.text


def test_gate_means_over_seeds_for_fused_settings_only():
    results = two_settings()
    for r in results:
        if r["setting"] == "layer5":  # gate_mean 0.6 + 0.1·seed in de, 0.2 in ru; en not scored for gates
            r["gates"] = {"de": {"gate_mean": 0.6 + 0.1 * r["seed"]}, "ru": {"gate_mean": 0.2}, "en": None}
        else:
            r["gates"] = {}
    s = summarize(results)
    assert "gate_mean" not in s["settings"]["baseline"]
    gate = s["settings"]["layer5"]["gate_mean"]
    assert gate["de"]["mean"] == pytest.approx(0.7) and gate["de"]["std"] == pytest.approx(0.1)
    assert gate["de"]["per_seed"] == pytest.approx({"0": 0.6, "1": 0.7, "2": 0.8})
    assert gate["ru"]["mean"] == pytest.approx(0.2) and gate["ru"]["n"] == 3
    assert math.isnan(gate["en"]["mean"]) and gate["en"]["n"] == 0
    results[-1]["gates"] = {}  # a fused seed without gate statistics (e.g. an older results.json)
    gate = summarize(results)["settings"]["layer5"]["gate_mean"]
    assert gate["de"]["mean"] == pytest.approx(0.65) and gate["de"]["n"] == 2 and math.isnan(gate["de"]["per_seed"]["2"])
    text = format_summary(s)
    assert "gate M (mean ± std over seeds)" in text and "0.7000 ± 0.1000" in text
    json.loads(json.dumps(s))


def test_format_summary_shows_the_tables():
    text = format_summary(summarize(two_settings()))
    assert "0.9000 ± 0.1000" in text  # baseline en
    assert "layer5 − baseline, paired over seeds [0, 1, 2]" in text
    de_line = next(line for line in text.splitlines() if line.startswith("de ") and "+0.0200" in line)
    assert "3/3" in de_line and f"{t_test_p_df2([0.01, 0.02, 0.03]):.3f}" in de_line
    assert "en (source)" in text and "zero-shot" in text


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        summarize([])
    with pytest.raises(ValueError, match="two results for setting 'baseline' and seed 0"):
        summarize([run("baseline", 0, {"en": 1.0}), run("baseline", 0, {"en": 0.9})])
    with pytest.raises(ValueError, match="lacks"):
        summarize([{"setting": "baseline", "seed": 0, "scores": {"en": 1.0}}])
    with pytest.raises(TypeError, match="seed must be an int"):
        summarize([run("baseline", "0", {"en": 1.0})])
    with pytest.raises(ValueError, match="source languages"):
        summarize([run("baseline", 0, {"en": 1.0}), run("layer5", 0, {"en": 1.0}, source=("de",))])


def test_heatmap_is_written(tmp_path):
    pytest.importorskip("matplotlib", reason="the heatmap needs matplotlib (the models extra)")
    path = tmp_path / "diff.png"
    assert plot_difference_heatmap(summarize(two_settings()), path, "tiny, dev, seeds 0-2") is True
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_heatmap_without_matplotlib_raises_import_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match="needs matplotlib"):
        plot_difference_heatmap(summarize(two_settings()), tmp_path / "x.png", "t")
