"""Summary rules added for issue 19.13 (few seeds) and issue 21.2 (the transfer gap), on hand-made results."""
import math

import pytest

from dlfa_models.reports.summary import format_summary, summarize


def run(setting, seed, scores):
    return {"setting": setting, "seed": seed, "scores": dict(scores), "source_langs": ["en"], "metric": "spearman"}


def seeds(n, delta=0.01):
    """Baseline and layer5 over n seeds; layer5 is better in de by delta·(seed + 1)."""
    return ([run("baseline", s, {"en": 0.8, "de": 0.5 + 0.01 * s}) for s in range(n)] +
            [run("layer5", s, {"en": 0.8, "de": 0.5 + 0.01 * s + delta * (s + 1)}) for s in range(n)])


def test_two_seeds_give_no_p_value_or_interval_and_say_why():
    s = summarize(seeds(2))
    de = s["differences"]["layer5"]["scores"]["de"]
    assert de["mean"] == pytest.approx(0.015) and de["std"] == pytest.approx(0.01 / math.sqrt(2)) and de["n"] == 2
    assert math.isnan(de["p_value"]) and math.isnan(de["ci_low"]) and math.isnan(de["ci_high"])
    assert any("only 2 paired seeds, so no p-value or interval" in n and "degree of freedom" in n for n in s["notes"])
    assert "<0.001" not in format_summary(s)


@pytest.mark.parametrize("n,rough", [(3, True), (4, True), (5, False)])
def test_below_five_seeds_the_tests_are_marked_rough(n, rough):
    s = summarize(seeds(n))
    de = s["differences"]["layer5"]["scores"]["de"]
    assert math.isfinite(de["p_value"]) and math.isfinite(de["ci_low"]) and de["rough"] is rough
    de_line = [line for line in format_summary(s).splitlines() if line.startswith("de ")][-1]  # the Δ table
    assert ("~" in de_line) is rough
    assert any("rough" in note for note in s["notes"]) is rough


def test_transfer_gap_and_ratio_per_setting_and_paired():
    base = {0: {"en": 0.80, "de": 0.60, "fr": 0.70}, 1: {"en": 0.90, "de": 0.60, "fr": 0.80},
            2: {"en": 0.70, "de": 0.50, "fr": 0.60}}
    fused = {0: {"en": 0.85, "de": 0.75, "fr": 0.75}, 1: {"en": 0.95, "de": 0.60, "fr": 0.70},
             2: {"en": 0.70, "de": 0.60, "fr": 0.60}}
    s = summarize([run("baseline", k, v) for k, v in base.items()] + [run("layer5", k, v) for k, v in fused.items()])
    gap = s["settings"]["baseline"]["transfer_gap"]
    assert [gap["per_seed"][k] for k in "012"] == pytest.approx([0.15, 0.2, 0.15])
    ratio = s["settings"]["layer5"]["transfer_ratio"]
    assert [ratio["per_seed"][k] for k in "012"] == pytest.approx([0.75 / 0.85, 0.65 / 0.95, 0.60 / 0.70])
    d = s["differences"]["layer5"]["transfer_gap"]  # fused gaps 0.10, 0.30, 0.10: Δ −0.05, +0.10, −0.05
    assert d["mean"] == pytest.approx(0.0) and d["n"] == 3
    assert d["improved"] == 2  # seeds 0 and 2: the gap narrowed
    text = format_summary(s)
    assert "transfer gap" in text and "transfer ratio" in text and "lower is better" in text
