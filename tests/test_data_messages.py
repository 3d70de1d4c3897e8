"""Bad or unusual data gets one clear line naming the file and row (or the hub dataset), never a bare exception."""
import csv

import pytest

from dlfa_models.data import TASKS, DataError, load_split


def load(tmp_path, name, content, task="sts", split="train"):
    (tmp_path / name).write_text(content, encoding="utf-8")
    return load_split(TASKS[task], "en", split, str(tmp_path)).to_list()


@pytest.mark.parametrize("label", ["--1", "²", "٣", "1.0"])
def test_a_label_that_is_not_a_plain_index_names_file_and_row(tmp_path, label):
    with pytest.raises(DataError, match=rf"xnli-en-train.tsv, row 2: unknown label '{label}'"):
        load(tmp_path, "xnli-en-train.tsv", f"premise\thypothesis\tlabel\na\tb\t{label}\n", task="xnli")


def test_a_tag_that_is_not_a_plain_index_names_file_and_row(tmp_path):
    with pytest.raises(DataError, match=r"ner-en-train.jsonl, row 1: unknown label '--1'"):
        load(tmp_path, "ner-en-train.jsonl", '{"tokens": ["a"], "tags": ["--1"]}\n', task="ner")


def test_plain_and_negative_indices_still_read(tmp_path):
    assert load(tmp_path, "xnli-en-train.tsv", "premise\thypothesis\tlabel\na\tb\t 2 \n", task="xnli")[0]["label"] == 2
    with pytest.raises(DataError, match=r"row 2: unknown label -1"):
        load(tmp_path, "xnli-en-train.tsv", "premise\thypothesis\tlabel\na\tb\t-1\n", task="xnli")


def test_a_score_beyond_the_float_range_names_file_and_row(tmp_path):
    huge = "1" + "0" * 400
    with pytest.raises(DataError, match=r"stsb-en-train.jsonl, row 1: score 1000.* is outside 0.0–5.0"):
        load(tmp_path, "stsb-en-train.jsonl", f'{{"sentence1": "a", "sentence2": "b", "label": {huge}}}\n')


@pytest.mark.parametrize("task, name, good, bad", [
    ("ner", "ner-en-train.jsonl", '{"tokens": ["x"], "tags": [0]}', '{"tokens": ["a", "\\ud800"], "tags": [0, 0]}'),
    ("sts", "stsb-en-train.jsonl", '{"sentence1": "x", "sentence2": "y", "label": 0}',
     '{"sentence1": "a", "sentence2": "b\\udfff", "label": 1}'),
])
def test_an_unpaired_surrogate_escape_in_json_names_file_and_row(tmp_path, task, name, good, bad):
    # json.loads turns the escape into a str that no tokenizer or Arrow table can encode
    with pytest.raises(DataError, match=rf"{name}, row 2: .* holds an unpaired surrogate escape"):
        load(tmp_path, name, f"{good}\n{bad}\n", task=task)


def test_a_csv_field_longer_than_128_kib_is_read(tmp_path):
    long = "word " * 40_000  # 200,000 characters, beyond the csv module's default field limit
    limit = csv.field_size_limit()
    rows = load(tmp_path, "stsb-en-train.csv", f'"{long}",b,1.5\nc,d,2\n')
    assert rows[0]["sentence1"] == long and rows[1]["label"] == 2.0
    assert csv.field_size_limit() == limit  # the process-wide limit is left as it was


def test_missing_test_file_suggests_the_dev_split(tmp_path):
    (tmp_path / "stsb-en-dev.csv").write_text("a,b,1\n")
    with pytest.raises(DataError, match=r"no test data for language 'en' .*score that with --eval_split dev"):
        load_split(TASKS["sts"], "en", "test", str(tmp_path))
    with pytest.raises(DataError, match=r"no test data for language 'de'") as e:
        load_split(TASKS["sts"], "de", "test", str(tmp_path))
    assert "--eval_split" not in str(e.value)  # no dev file for de either: no false hint


def test_hub_data_offline_is_one_line_naming_the_dataset(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'PhilipMay/stsb_multi_mt' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"PhilipMay/stsb_multi_mt \(en, test\) from the hub: Couldn't reach .*"
                                        r"pass --data a folder"):
        load_split(TASKS["sts"], "en", "test", "hub")
