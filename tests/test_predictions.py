"""What gets scored and written: one prediction line per example, every example whatever the training flags,
and the same evaluation subset for every training seed, so evaluate-only on a run folder reproduces it."""
import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from dlfa_models import train
from dlfa_models.data import TASKS
from dlfa_models.data.tokenization import tokenize
from dlfa_models.training import build, planning, scoring
from dlfa_models.training.parsing import parse_args

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def base(encoder, data, out, task="sts", *extra):
    return ["--task", task, "--model_name_or_path", str(encoder), "--data", str(data), "--output_dir", str(out),
            "--max-steps", "2", "--per_device_train_batch_size", "8", "--backend", "torch", "--max-length", "64",
            "--fusion_layer", "1", *extra]


def prediction_lines(folder, lang):
    lines = (folder / f"predict_results_{lang}.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index\tprediction"
    return [line.split("\t") for line in lines[1:]]


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_tagging_predictions_have_one_line_per_sentence_with_all_its_words(assets, tmp_path, task):
    encoder, data = assets
    sentences = [json.loads(line) for line in (data / f"{task}-en-test.jsonl").read_text().splitlines()][:10]
    long = {"tokens": (sentences[3]["tokens"] * 10)[:30], "tags": (sentences[3]["tags"] * 10)[:30]}
    sentences[3] = long  # 30 words in windows of at most 10 - 2 sub-words: several windows
    own = tmp_path / "data"
    own.mkdir()
    for split in ("train", "dev", "test"):
        (own / f"{task}-en-{split}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in sentences))
    out = tmp_path / "out"
    assert train.main(base(encoder, own, out, task, "--max-length", "10", "--eval_langs", "en",
                           "--source_langs", "en")) == 0
    lines = prediction_lines(out / f"{task}-layer1", "en")
    assert [int(index) for index, _ in lines] == list(range(10))
    assert [len(tags.split()) for _, tags in lines] == [len(s["tokens"]) for s in sentences]


def test_prediction_lines_join_the_windows_of_a_sentence():
    class Config:
        id2label = {0: "O", 1: "B-PER"}

    logits = np.zeros((3, 4, 2))
    logits[0, 1, 1] = logits[2, 2, 1] = 1  # B-PER at word 1 of sentence 0 and the second word of sentence 1
    labels = np.array([[-100, 0, 0, -100], [-100, 0, -100, -100], [-100, 0, 0, -100]])
    lines = scoring._prediction_lines(TASKS["ner"], Config, logits, labels, sentence_ids=[0, 0, 1])
    assert lines == ["B-PER O O", "O B-PER"]


def test_dataloader_drop_last_drops_no_example_from_scoring(assets, tmp_path):
    encoder, data = assets  # 24 examples per split: batches of 5 leave a last batch of 4
    out = tmp_path / "out"
    assert train.main(base(encoder, data, out, "sts", "--dataloader_drop_last", "--per_device_eval_batch_size", "5",
                           "--eval_langs", "en,de")) == 0
    folder = out / "sts-layer1"
    assert len(prediction_lines(folder, "de")) == 24
    result = json.loads((folder / "results.json").read_text())
    assert result["dev_metrics"]["eval_samples_per_second"] > 0 and np.isfinite(result["scores"]["de"])
    args = parse_args(base(encoder, data, out, "sts", "--dataloader_drop_last", "--per_device_eval_batch_size", "5",
                           "--per_device_train_batch_size", "5", "--eval_langs", "en"))
    task = TASKS["sts"]
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = build.build_model(args, task, str(encoder), planning.Setting(1), 0)
    ds = tokenize(build.load_data(args, task)["dev"], tokenizer, task, 64)
    trainer = build.make_trainer(args, task, model, tokenizer, planning.run_training_args(args.training, out, 0, task),
                                 train_ds=ds, dev_ds=ds)
    assert sum(len(b["labels"]) for b in trainer.get_eval_dataloader()) == 24
    assert sum(len(b["labels"]) for b in trainer.get_test_dataloader(ds)) == 24
    assert sum(len(b["labels"]) for b in trainer.get_train_dataloader()) == 20  # training still drops it
    assert trainer.args.dataloader_drop_last


def test_the_evaluation_subset_does_not_depend_on_the_training_seed(assets, tmp_path):
    encoder, data = assets
    task = TASKS["sts"]
    subsets = []
    for seed in ("1", "2"):
        args = parse_args(base(encoder, data, tmp_path, "sts", "--seed", seed, "--max_eval_samples", "7",
                               "--max_train_samples", "9", "--eval_langs", "en,de"))
        loaded = build.load_data(args, task)
        subsets.append((loaded["train"].to_list(), loaded["dev"].to_list(), loaded["eval"]["de"].to_list()))
    assert subsets[0] == subsets[1]
    other = parse_args(base(encoder, data, tmp_path, "sts", "--subset_seed", "3", "--max_eval_samples", "7",
                            "--eval_langs", "de"))
    assert build.load_data(other, task)["eval"]["de"].to_list() != subsets[0][2]


def test_evaluate_only_on_a_run_folder_reproduces_its_results_without_repeating_a_flag(assets, tmp_path):
    encoder, data = assets
    trained = tmp_path / "runs"
    assert train.main(base(encoder, data, trained, "sts", "--seed", "1", "--max_eval_samples", "10",
                           "--eval_split", "dev", "--eval_langs", "en,de", "--max-length", "32")) == 0
    run = trained / "sts-layer1"
    scored = tmp_path / "scored"
    assert train.main(["--do_predict", "--model_name_or_path", str(run), "--output_dir", str(scored)]) == 0
    before, after = (json.loads((folder / "results.json").read_text()) for folder in (run, scored))
    for key in ("task", "scores", "all_metrics", "gates", "mean_non_source", "source_langs", "eval_split"):
        assert after[key] == before[key], key  # exactly: the same examples, the same weights
    for lang in ("en", "de"):
        assert (scored / f"predict_results_{lang}.txt").read_text() == (run / f"predict_results_{lang}.txt").read_text()
    recorded = json.loads((scored / "run_config.json").read_text())
    assert (recorded["max_eval_samples"], recorded["subset_seed"], recorded["eval_split"], recorded["max_length"]) == (
        10, 42, "dev", 32)
    # an option given on the command line still wins over the run's
    again = tmp_path / "scored-fr"
    assert train.main(["--do_predict", "--model_name_or_path", str(run), "--output_dir", str(again),
                       "--eval_langs", "fr"]) == 0
    assert list(json.loads((again / "results.json").read_text())["scores"]) == ["fr"]
