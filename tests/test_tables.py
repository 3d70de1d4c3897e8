"""Paper-ready tables (sweep.md/.csv, summary.md/.csv), the heatmap's mean row and the transfer gap per run."""
import json
import math

import pandas as pd
import pytest

from dlfa_models import train
from dlfa_models.reports.report import heatmap_rows, sweep_table, transfer_figures
from dlfa_models.reports.summary import summarize
from dlfa_models.reports.tables import write_summary_tables, write_sweep_tables
from tiny_assets import make_encoder, make_task_data

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def result(setting, seed, scores):
    zs = [v for k, v in scores.items() if k != "en"]
    return {"task": "sts", "metric": "spearman", "setting": setting, "seed": seed, "scores": scores,
            "source_langs": ["en"], "mean_non_source": sum(zs) / len(zs)}


def test_transfer_figures():
    t = transfer_figures({"en": 0.8, "de": 0.5, "fr": 0.7}, ["en"], 0.6)
    assert t == pytest.approx({"source_mean": 0.8, "transfer_gap": 0.2, "transfer_ratio": 0.75})
    assert all(math.isnan(v) for v in transfer_figures({"de": 0.5}, ["en"], 0.5).values())


def test_sweep_tables(tmp_path):
    table = sweep_table([result("baseline", 0, {"en": 0.8, "de": 0.5, "fr": 0.7}),
                         result("layer1", 0, {"en": 0.9, "de": 0.6, "fr": 0.6})])
    write_sweep_tables(table, tmp_path)
    frame = pd.read_csv(tmp_path / "sweep.csv", index_col=0)
    assert list(frame.columns) == ["baseline", "layer1"]
    assert list(frame.index) == ["en", "de", "fr", "mean (zero-shot)", "transfer gap", "transfer ratio"]
    assert frame.loc["mean (zero-shot)"].tolist() == pytest.approx([0.6, 0.6])
    assert frame.loc["transfer gap"].tolist() == pytest.approx([0.2, 0.3])
    md = (tmp_path / "sweep.md").read_text()
    assert "| en " in md and "**0.9000**" in md and "**0.2000**" in md  # best: highest score, narrowest gap
    labels, scores = heatmap_rows(table)
    assert labels[-1] == "mean (zero-shot)" and scores[-1].tolist() == pytest.approx([0.6, 0.6])


def test_summary_tables(tmp_path):
    runs = [result(name, s, {"en": 0.8 + 0.01 * s, "de": 0.5 + 0.02 * s + d}) for s in range(3)
            for name, d in (("baseline", 0.0), ("layer1", 0.01 * (s + 1)))]
    summary = summarize(runs)
    write_summary_tables(summary, tmp_path, "sts dev, tiny, seeds 0,1,2")
    frame = pd.read_csv(tmp_path / "summary.csv")
    assert set(frame["row"]) == {"en", "de", "zero-shot", "transfer gap", "transfer ratio"}
    de = frame[(frame["setting"] == "layer1") & (frame["row"] == "de")].iloc[0]
    assert de["mean"] == pytest.approx(0.54) and de["n"] == 3 and de["delta_mean"] == pytest.approx(0.02)
    assert de["delta_improved"] == 3 and bool(de["delta_rough"]) and 0 < de["delta_p_value"] < 1
    assert math.isnan(frame[frame["setting"] == "baseline"].iloc[0]["delta_mean"])  # no difference to itself
    assert "3,0.020000,0.010000,3,0.074180" in (tmp_path / "summary.csv").read_text()  # counts as integers
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("## sts dev, tiny, seeds 0,1,2") and "### layer1 − baseline, paired over seeds [0, 1, 2]" in md
    assert "0.5400 ± 0.0300" in md and "~0.074" in md and "transfer gap" in md and "rough" in md


def test_seeds_run_writes_the_tables_and_the_gap(tmp_path):
    encoder, data = make_encoder(tmp_path / "encoder"), make_task_data(tmp_path / "data")
    out = tmp_path / "runs"
    argv = ["--task", "sts", "--encoder", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--eval_langs", "en,de,fr", "--eval_split", "test", "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--backend", "torch", "--max_length", "32", "--fusion_layer", "none,1", "--seeds", "0,1"]
    assert train.main(argv) == 0
    res = json.loads((out / "sts-layer1" / "seed-0" / "results.json").read_text())
    assert res["transfer_gap"] == pytest.approx(res["scores"]["en"] - res["mean_non_source"])
    assert res["transfer_ratio"] == pytest.approx(res["mean_non_source"] / res["scores"]["en"])
    for name in ("sweep.csv", "sweep.md", "summary.csv", "summary.md"):
        assert (out / name).stat().st_size > 100, name
    summary = json.loads((out / "summary.json").read_text())
    assert "transfer_gap" in summary["differences"]["layer1"]
    assert "only 2 paired seeds, so no p-value or interval" in (out / "summary.md").read_text()
