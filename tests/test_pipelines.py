"""A saved dlfa-train STS run through the ecosystem's loaders: the Auto classes, pipeline("text-classification")
and sentence-transformers' CrossEncoder all return the model's similarity score (no sigmoid)."""
import json

import pytest
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

import dlfa_models  # noqa: F401  (registers the dlfa model type with the Auto classes)
from dlfa_models import train
from tiny_assets import make_encoder, make_task_data

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
PAIRS = [("the man plays the guitar", "a man plays a guitar"), ("the dog runs in the park", "anna reads a book")]


@pytest.fixture(scope="module")
def sts_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sts")
    encoder, data = make_encoder(root / "encoder"), make_task_data(root / "data")
    argv = ["--task", "sts", "--encoder", str(encoder), "--data", str(data), "--output_dir", str(root / "runs"),
            "--eval_langs", "en,de", "--eval_split", "test", "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--backend", "torch", "--max_length", "32", "--fusion_layer", "1"]
    assert train.main(argv) == 0
    return root / "runs" / "sts-layer1"


def direct_scores(folder) -> torch.Tensor:
    """(N,) the model's own regression outputs for PAIRS."""
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits[:, 0]


def test_saved_sts_model_records_regression(sts_run):
    config = json.loads((sts_run / "config.json").read_text())
    assert config["problem_type"] == "regression"
    assert config["sentence_transformers"]["activation_fn"] == "torch.nn.modules.linear.Identity"


def test_pipeline_returns_the_similarity(sts_run):
    expected = direct_scores(sts_run)
    scorer = pipeline("text-classification", model=str(sts_run))
    got = [scorer({"text": a, "text_pair": b})["score"] for a, b in PAIRS]
    assert got == pytest.approx(expected.tolist(), abs=1e-5)


def test_cross_encoder_returns_the_similarity(sts_run):
    expected = direct_scores(sts_run)
    model = CrossEncoder(str(sts_run))
    assert model.predict(PAIRS) == pytest.approx(expected.numpy(), abs=1e-5)
