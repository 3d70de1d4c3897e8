"""dlfa-train --architecture biencoder: the same run files as a cross-encoder run, the untrained setting first,
saved folders that SentenceTransformer and AutoModel load and that score as the prediction files say, gate
statistics of both sentences, evaluate-only, resume, and the option combinations refused before any work."""
import json
import re

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, TrainerCallback

import dlfa_models
from dlfa_models import train
from dlfa_models.data import SCORE_RANGE, TASKS, DataError, load_split
from dlfa_models.data.tokenization import tokenize_apart
from dlfa_models.training import run as training_run
from dlfa_models.training.parsing import parse_args
from dlfa_models.training.planning import Setting, run_settings
from dlfa_models.training.scoring import language_gate_stats

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

LANGS = ["en", "de", "fr"]


def cli(encoder, data, out, *extra):
    return ["--task", "sts", "--model_name_or_path", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--eval-langs", ",".join(LANGS), "--max-steps", "3", "--per_device_train_batch_size", "8",
            "--backend", "torch", "--max-length", "64", "--learning_rate", "1e-3", *extra]


@pytest.fixture(scope="module")
def study(assets, tmp_path_factory):
    """A bi-encoder study over two seeds, the untrained setting named last (it must still come first)."""
    encoder, data = assets
    out = tmp_path_factory.mktemp("biencoder")
    assert train.main(cli(encoder, data, out, "--architecture", "biencoder", "--fusion_layer", "none,1,untrained",
                          "--seeds", "0,1", "--curve_steps", "2", "--curve_zero_shot")) == 0
    return out


@pytest.fixture(scope="module")
def cross_encoder_run(assets, tmp_path_factory):
    encoder, data = assets
    out = tmp_path_factory.mktemp("cross")
    assert train.main(cli(encoder, data, out, "--fusion_layer", "1", "--seeds", "0", "--curve_steps", "2")) == 0
    return out / "sts-layer1" / "seed-0"


def test_a_biencoder_run_writes_the_cross_encoders_files_and_the_sentence_transformers_ones(study, cross_encoder_run):
    run = study / "sts-biencoder-layer1" / "seed-0"
    files = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    cross = {p.relative_to(cross_encoder_run).as_posix() for p in cross_encoder_run.rglob("*") if p.is_file()}
    assert cross <= files
    assert files - cross == {"modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                             "1_Pooling/config.json"}
    for name in ("sweep.json", "sweep.md", "summary.json", "summary.md", "curves.png"):
        assert (study / name).is_file(), name
    result = json.loads((run / "results.json").read_text())
    assert result["architecture"] == "biencoder" and result["setting"] == "layer1" and result["best_step"] is not None
    recorded = json.loads((run / "run_config.json").read_text())
    assert (recorded["architecture"], recorded["similarity_loss"]) == ("biencoder", "cosine")
    assert recorded["pooling"] == "mean"
    assert json.loads((run / "config.json").read_text())["architectures"] == ["DLFAForSentenceSimilarity"]
    card = (run / "README.md").read_text()
    assert "SentenceTransformer(" in card and "sentence-similarity" in card


def test_the_untrained_setting_takes_no_step_and_comes_first(study, assets):
    runs = [study / "sts-biencoder-untrained" / f"seed-{s}" for s in (0, 1)]
    results = [json.loads((r / "results.json").read_text()) for r in runs]
    for run, result in zip(runs, results):
        assert result["best_step"] is None and result["train_time_s"] == 0.0 and result["fusion_layer"] is None
        assert not (run / "trainer_state.json").exists() and not (run / "curves.json").exists()
        assert "no training steps" in (run / "README.md").read_text()
    assert results[0]["scores"] == results[1]["scores"]  # deterministic: nothing random in the plain encoder
    # its scores are the plain encoder's: mean-pooled cosine of each sentence alone
    encoder, data = assets
    model, tok = AutoModel.from_pretrained(encoder).eval(), AutoTokenizer.from_pretrained(encoder)
    rows = load_split(TASKS["sts"], "de", "test", str(data))
    from dlfa_models.training.metrics import sts_metrics

    def embed(texts):
        batch = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1)

    cos = torch.nn.functional.cosine_similarity(embed(list(rows["sentence1"])), embed(list(rows["sentence2"])))
    assert results[0]["scores"]["de"] == pytest.approx(sts_metrics(cos.numpy(), np.array(rows["label"]))["spearman"],
                                                       abs=1e-9)
    assert json.loads((study / "sweep.json").read_text())["settings"] == ["untrained", "baseline", "layer1"]
    summary = json.loads((study / "summary.json").read_text())
    assert list(summary["settings"]) == ["untrained", "baseline", "layer1"]
    assert summary["baseline"] == "baseline" and any("what you get for free" in n for n in summary["notes"])
    header = next(line for line in (study / "summary.md").read_text().splitlines() if line.startswith("| spearman"))
    assert header.index("untrained") < header.index("baseline") < header.index("layer1")
    assert "learning_rate" not in (runs[0] / "README.md").read_text()  # no step taken: no training hyperparameters


def test_sentence_transformers_and_automodel_load_the_saved_run_and_reproduce_its_predictions(study, assets):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    _, data = assets
    run = study / "sts-biencoder-layer1" / "seed-0"
    model = sentence_transformers.SentenceTransformer(str(run), device="cpu")
    rows = load_split(TASKS["sts"], "fr", "test", str(data))
    a = model.encode(list(rows["sentence1"]), convert_to_tensor=True)
    b = model.encode(list(rows["sentence2"]), convert_to_tensor=True)
    cos = torch.nn.functional.cosine_similarity(a, b).numpy()
    lines = (run / "predict_results_fr.txt").read_text().splitlines()[1:]
    written = np.array([float(line.split("\t")[1]) for line in lines])
    np.testing.assert_allclose(cos, written, atol=2e-6)
    assert isinstance(AutoModel.from_pretrained(run), dlfa_models.DLFAModel)


def test_gate_statistics_count_the_tokens_of_both_sentences(study, assets):
    encoder, data = assets
    result = json.loads((study / "sts-biencoder-layer1" / "seed-0" / "results.json").read_text())
    rows = load_split(TASKS["sts"], "de", "test", str(data))
    tok = AutoTokenizer.from_pretrained(encoder)
    sentences = [*rows["sentence1"], *rows["sentence2"]]
    tokens = sum(len(tok(s, truncation=True, max_length=64)["input_ids"]) for s in sentences)
    gate = result["gates"]["de"]
    assert gate["gate_sequences"] == 2 * len(rows) and gate["gate_tokens"] == tokens
    assert 0 < gate["gate_mean"] < 1


def test_language_gate_stats_pool_both_sides():
    side = {"gate_token_sum": np.array([1.0, 2.0]), "gate_token_sq_sum": np.array([0.5, 1.0]),
            "gate_token_count": np.array([2, 4]), "gate_hist": np.array([[0] * 9 + [2], [0] * 9 + [4]])}
    other = {"gate_token_sum": np.array([3.0]), "gate_token_sq_sum": np.array([3.0]),
             "gate_token_count": np.array([3]), "gate_hist": np.array([[0] * 9 + [3]])}
    both = language_gate_stats({**side, **{f"{k}_b": v for k, v in other.items()}})
    assert both["gate_tokens"] == 9 and both["gate_sequences"] == 3
    assert both["gate_mean"] == pytest.approx(6.0 / 9)
    assert language_gate_stats(side)["gate_tokens"] == 6


def test_evaluate_only_rescores_a_saved_biencoder(study, assets, tmp_path, capsys):
    _, data = assets
    run = study / "sts-biencoder-layer1" / "seed-1"
    out = tmp_path / "scored"
    # the run's recorded options (architecture, data, languages) are the defaults
    assert train.main(["--do_predict", "--model_name_or_path", str(run), "--output_dir", str(out)]) == 0
    result, before = (json.loads((f / "results.json").read_text()) for f in (out, run))
    assert result["architecture"] == "biencoder" and result["fusion_layer"] == 1
    for lang in LANGS:
        assert result["scores"][lang] == pytest.approx(before["scores"][lang], abs=1e-6)
    assert result["gates"]["de"]["gate_sequences"] == before["gates"]["de"]["gate_sequences"]
    capsys.readouterr()
    status = train.main(["--do_predict", "--model_name_or_path", str(run), "--output_dir", str(tmp_path / "x"),
                         "--architecture", "cross-encoder", "--data", str(data)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "--architecture cross-encoder" in err
    untrained = study / "sts-biencoder-untrained" / "seed-0"  # its config says fusion_layer None, as a baseline's
    assert train.main(["--do_predict", "--model_name_or_path", str(untrained),
                       "--output_dir", str(tmp_path / "u")]) == 0
    assert json.loads((tmp_path / "u" / "results.json").read_text())["setting"] == "untrained"
    assert result["setting"] == "layer1"


def test_resume_skips_finished_biencoder_runs_and_the_cross_encoders_record_is_unchanged(study, assets):
    encoder, data = assets
    written = {f: f.stat().st_mtime_ns for f in study.glob("sts-biencoder-*/seed-*/*") if f.is_file()}
    assert len(written) > 40
    assert train.main(cli(encoder, data, study, "--architecture", "biencoder", "--fusion_layer", "none,1,untrained",
                          "--seeds", "0,1", "--curve_steps", "2", "--curve_zero_shot", "--resume")) == 0
    assert {f: f.stat().st_mtime_ns for f in written} == written  # every run was finished: none trained or rescored
    args = parse_args(cli(encoder, data, "o", "--fusion_layer", "1"))
    record = run_settings(args, TASKS["sts"], Setting(1), 0, str(encoder))
    assert "architecture" not in record and "similarity_loss" not in record  # old cross-encoder runs still resume


@pytest.mark.parametrize("extra, message", [
    (["--architecture", "biencoder", "--task", "xnli"], r"--architecture biencoder .*only with --task sts"),
    (["--similarity_loss", "cosent"], r"--similarity_loss cosent is a bi-encoder loss"),
    (["--fusion_layer", "untrained,none"], r"--fusion_layer untrained .*only with --architecture biencoder"),
])
def test_bad_combinations_exit_2_with_one_line_before_any_work(assets, tmp_path, capsys, extra, message):
    encoder, data = assets
    out = tmp_path / "out"
    assert train.main(cli(encoder, data, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()


def test_scores_outside_the_range_are_refused_with_the_row():
    from datasets import Dataset

    ds = Dataset.from_dict({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1.0, 5.5]})
    with pytest.raises(DataError, match=r"the en train data, row 1: score 5.5 is outside 0.0–5.0"):
        tokenize_apart(ds, None, 16, "", SCORE_RANGE, "the en train data")


def test_sentences_are_tokenized_apart_with_the_prompt_and_labels_scaled(assets):
    from datasets import Dataset

    encoder, _ = assets
    tok = AutoTokenizer.from_pretrained(encoder)
    ds = Dataset.from_dict({"sentence1": ["the man"], "sentence2": ["a woman"], "label": [4.0]})
    enc = tokenize_apart(ds, tok, 16, "the ", SCORE_RANGE)[0]
    assert enc["input_ids"] == tok("the the man")["input_ids"] and enc["input_ids_b"] == tok("the a woman")["input_ids"]
    assert enc["labels"] == pytest.approx(0.8)


class _Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt


def test_a_biencoder_run_interrupted_in_training_resumes_to_the_uninterrupted_scores(assets, tmp_path, monkeypatch):
    encoder, data = assets
    args = cli(encoder, data, tmp_path / "runs", "--architecture", "biencoder", "--fusion_layer", "1",
               "--max-steps", "4", "--eval_steps", "2")
    real = training_run.make_trainer

    def interrupted(*a, **k):
        trainer = real(*a, **k)
        trainer.add_callback(_Interrupt)
        return trainer
    monkeypatch.setattr(training_run, "make_trainer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.main(args)
    run = tmp_path / "runs" / "sts-biencoder-layer1"
    assert (run / "checkpoint-2").is_dir() and not (run / "results.json").exists()
    monkeypatch.setattr(training_run, "make_trainer", real)
    assert train.main(args + ["--resume"]) == 0
    assert "resuming from" in (run / "train.log").read_text()
    assert train.main(cli(encoder, data, tmp_path / "once", "--architecture", "biencoder", "--fusion_layer", "1",
                          "--max-steps", "4", "--eval_steps", "2")) == 0
    resumed, once = (json.loads((f / "sts-biencoder-layer1" / "results.json").read_text())["scores"]
                     for f in (tmp_path / "runs", tmp_path / "once"))
    assert resumed == pytest.approx(once, abs=1e-6)


def test_keep_none_leaves_no_sentence_transformers_module_folders(assets, tmp_path):
    encoder, data = assets
    assert train.main(cli(encoder, data, tmp_path, "--architecture", "biencoder", "--fusion_layer", "1",
                          "--keep", "none")) == 0
    folder = tmp_path / "sts-biencoder-layer1"
    names = {p.name for p in folder.iterdir()}
    assert {"results.json", "run_config.json", "predict_results_de.txt"} <= names
    assert not names & {"1_Pooling", "2_Normalize", "modules.json", "config.json", "model.safetensors"}
