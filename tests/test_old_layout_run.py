"""Models and run folders saved by the flat layout of ``dlfa_models`` (commit 271dfb7) load as before.

``tests/old_layout_run`` (made by ``make_old_layout_run.py`` there) holds a ``dlfa-train`` sweep over two
settings and two seeds, the saved model of one run, a model saved after ``apply_dlfa``, and both models'
logits as that code computed them (``expected.json``).
"""
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification

from dlfa_models import DLFAConfig, DLFAForSequenceClassification, load_dlfa_pretrained
from dlfa_models import train
from dlfa_models.reports.report import sweep_table
from dlfa_models.reports.summary import summarize
from dlfa_models.reports.tables import write_summary_tables, write_sweep_tables
from dlfa_models.training.json_files import read_json, write_json
from dlfa_models.training.reporting import _mean_over_seeds
from dlfa_models.training.runs import RESULTS, read_results
from tiny_assets import make_task_data

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

OLD = Path(__file__).parent / "old_layout_run"
SWEEP = OLD / "seeds"
RUN = SWEEP / "sts-layer1" / "seed-0"
EXPECTED = json.loads((OLD / "expected.json").read_text())


def _logits(model, tokenizer) -> torch.Tensor:
    pairs = EXPECTED["pairs"]
    batch = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def test_the_run_model_loads_with_the_auto_classes():
    assert isinstance(AutoConfig.from_pretrained(RUN), DLFAConfig)
    model = AutoModelForSequenceClassification.from_pretrained(RUN, aif_backend="torch").eval()
    assert isinstance(model, DLFAForSequenceClassification) and model.config.fusion_layer == 1
    torch.testing.assert_close(_logits(model, AutoTokenizer.from_pretrained(RUN)),
                               torch.tensor(EXPECTED["run_logits"]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_class", [AutoModelForSequenceClassification, BertForSequenceClassification])
def test_the_applied_model_loads_with_load_dlfa_pretrained(model_class):
    model = load_dlfa_pretrained(model_class, OLD / "applied")
    assert isinstance(model, BertForSequenceClassification) and model.bert.dlfa_fusion_layer == 1
    assert model.config.dlfa == {"fusion_layer": 1, "reduction": 2, "backend": "torch", "gate_init": 0.8}
    torch.testing.assert_close(_logits(model, AutoTokenizer.from_pretrained(RUN)),
                               torch.tensor(EXPECTED["applied_logits"]), rtol=1e-5, atol=1e-6)


def _old_results() -> list[dict]:
    """The runs' results in the order the sweep ran them (settings, then seeds)."""
    return [read_results(path) for path in sorted(SWEEP.glob(f"*/seed-*/{RESULTS}"))]


def _as_written(value, folder: Path):
    write_json(folder / "value.json", value)  # null for NaN, as the run wrote it
    return read_json(folder / "value.json")


def test_the_seeds_summary_and_tables_come_back_the_same(tmp_path):
    results = _old_results()
    assert [(r["setting"], r["seed"]) for r in results] == [("baseline", 0), ("baseline", 1), ("layer1", 0),
                                                            ("layer1", 1)]
    summary = summarize(results, baseline="baseline")
    assert _as_written(summary, tmp_path) == read_json(SWEEP / "summary.json")
    write_summary_tables(summary, tmp_path, "sts test, encoder, seeds 0,1")
    for name in ("summary.md", "summary.csv"):
        assert (tmp_path / name).read_text() == (SWEEP / name).read_text(), name


def test_the_sweep_table_comes_back_the_same(tmp_path):
    table = sweep_table(_mean_over_seeds(_old_results()))
    assert _as_written(table, tmp_path) == read_json(SWEEP / "sweep.json")
    write_sweep_tables(table, tmp_path)
    for name in ("sweep.md", "sweep.csv"):
        assert (tmp_path / name).read_text() == (SWEEP / name).read_text(), name


def test_evaluate_only_scores_the_old_run_folder_as_its_run_did(tmp_path, monkeypatch):
    """``--do_predict`` on the saved run takes its data options from its ``run_config.json``."""
    monkeypatch.chdir(tmp_path)
    make_task_data(Path("data"), n=12)  # the run's --data folder, recorded as "data"
    shutil.copytree(RUN, "model")
    assert train.main(["--do_predict", "--model_name_or_path", "model", "--output_dir", "scored",
                       "--backend", "torch"]) == 0
    scored, recorded = read_results(Path("scored", RESULTS)), read_results(RUN / RESULTS)
    assert list(scored["scores"]) == ["en", "de", "fr"]
    assert scored["scores"] == pytest.approx(recorded["scores"], abs=1e-6)
    for lang in scored["scores"]:
        assert Path("scored", f"predict_results_{lang}.txt").read_text() == \
            (RUN / f"predict_results_{lang}.txt").read_text()
