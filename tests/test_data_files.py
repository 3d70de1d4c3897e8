"""Local task files (.csv, .tsv, .jsonl): exact rows for good files, DataError with file and row for bad ones."""
import pytest
from datasets import Dataset

from dlfa_models import train
from dlfa_models.data import TASKS, DataError, load_split
from tiny_assets import make_encoder

FILE = {"sts": "stsb-en-train", "xnli": "xnli-en-train", "pawsx": "pawsx-en-train", "ner": "ner-en-train",
        "pos": "pos-en-train"}


def load(tmp_path, task, ext, content):
    """Write content (str or bytes) as the task's English train file and load it."""
    path = tmp_path / f"{FILE[task]}.{ext}"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return load_split(TASKS[task], "en", "train", str(tmp_path)).to_list()


def pairs(*rows):
    return [{"sentence1": a, "sentence2": b, "label": c} for a, b, c in rows]


# ----------------------------------------------------------------------------- .tsv: quotes are text

def test_tsv_unmatched_quote_does_not_merge_lines(tmp_path):
    content = '"he said hi\tshe left\t2.5\nx\ty\t1\nq\tw\t3\nr\tt\t4\n'
    assert load(tmp_path, "sts", "tsv", content) == pairs(('"he said hi', "she left", 2.5), ("x", "y", 1.0),
                                                          ("q", "w", 3.0), ("r", "t", 4.0))


def test_tsv_matched_quotes_are_kept(tmp_path):
    content = 'premise\thypothesis\tlabel\n"a b"\t"c"\tneutral\n'
    assert load(tmp_path, "xnli", "tsv", content) == pairs(('"a b"', '"c"', 1))


def test_tsv_tab_inside_a_sentence_is_an_extra_column(tmp_path):
    with pytest.raises(DataError, match=r"stsb-en-train.tsv, row 2: 4 columns, expected 3"):
        load(tmp_path, "sts", "tsv", 'a\tb\t1\n"x\ty"\tz\t2\n')


# ----------------------------------------------------------------------------- .csv quoting

def test_csv_quoted_commas_and_quotes_are_read(tmp_path):
    assert load(tmp_path, "sts", "csv", '"a, b","say ""hi""",1.5\n') == pairs(("a, b", 'say "hi"', 1.5))


@pytest.mark.parametrize("content,row", [('x,"a b,1\ny,z,2\nq,w,3\n', 1), ('x,y,1\n"a\nb",c,2\n', 2),
                                         ('x,y,1\n"a"b,c,2\n', 2)])
def test_csv_quote_that_swallows_lines_is_refused(tmp_path, content, row):
    with pytest.raises(DataError, match=rf"stsb-en-train.csv, row {row}: "):
        load(tmp_path, "sts", "csv", content)


# ----------------------------------------------------------------------------- .jsonl value types

def _json(s1='"a"', s2='"b"', label="1"):
    return f'{{"sentence1": {s1}, "sentence2": {s2}, "label": {label}}}\n'


OK_LINE = _json()


@pytest.mark.parametrize("task,line,message", [
    ("pawsx", _json(s1="null"), r"row 2: sentence1 must be text, got null"),
    ("pawsx", _json(s2="3"), r"row 2: sentence2 must be text, got a number"),
    ("pawsx", _json(s2='["b"]'), r"row 2: sentence2 must be text, got a list"),
    ("pawsx", _json(label="null"), r"row 2: unknown label None"),
    ("pawsx", _json(label="true"), r"row 2: unknown label True"),
    ("sts", _json(label="true"), r"row 2: score True is not a number"),
    ("sts", _json(label="null"), r"row 2: score None is not a number"),
    ("sts", _json(label="[1]"), r"row 2: score \[1\] is not a number"),
    ("sts", '{"sentence1": "a", "sentence2": "b", "label": 1, "score": 2}\n',
     r"row 2: 'label' and 'score' both give the label column"),
    ("sts", '{"sentence1": "a", "sentence2": "b", "label": 1, "label": 2}\n', r"row 2: key 'label' appears twice"),
    ("sts", '["a", "b", 1]\n', r"row 2: expected a JSON object, got a list"),
    ("sts", '"a b 1"\n', r"row 2: expected a JSON object, got a string"),
    ("sts", "null\n", r"row 2: expected a JSON object, got null"),
    ("sts", "3\n", r"row 2: expected a JSON object, got a number"),
    ("sts", "[]\n", r"row 2: expected a JSON object, got a list"),
    ("ner", '{"tokens": null, "tags": ["O"]}\n', r"row 2: tokens and tags must be lists of equal length, got null"),
    ("ner", '{"tokens": "a b", "tags": ["O", "O"]}\n', r"row 2: tokens and tags must be lists .* got a string"),
    ("ner", '{"tokens": ["a", null], "tags": ["O", "O"]}\n', r"row 2: token 1 is null, not a string"),
    ("ner", '{"tokens": ["a", 7], "tags": ["O", "O"]}\n', r"row 2: token 1 is a number, not a string"),
    ("ner", '{"tokens": ["a"], "tags": [null]}\n', r"row 2: unknown label None"),
    ("ner", '{"tokens": ["a"], "tags": [true]}\n', r"row 2: unknown label True"),
    ("ner", '{"tokens": [], "tags": []}\n', r"row 2: a sentence without tokens"),
])
def test_jsonl_values_are_type_checked(tmp_path, task, line, message):
    first = '{"tokens": ["a"], "tags": ["O"]}\n' if task == "ner" else OK_LINE
    with pytest.raises(DataError, match=rf"{FILE[task]}.jsonl, {message}"):
        load(tmp_path, task, "jsonl", first + line)


def test_jsonl_score_alias_and_integer_score(tmp_path):
    content = '{"sentence1": "a", "sentence2": "b", "score": 3}\n{"sentence1": "c", "sentence2": "d", "label": 0.5}\n'
    assert load(tmp_path, "sts", "jsonl", content) == pairs(("a", "b", 3.0), ("c", "d", 0.5))


def test_header_naming_label_and_score_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"row 1: 'label' and 'score' both give the label column"):
        load(tmp_path, "sts", "csv", "sentence1,sentence2,label,score\na,b,1,2\n")


# ----------------------------------------------------------------------------- encoding

@pytest.mark.parametrize("ext,content", [
    ("csv", b"a,b,1\nc,d,2\nx\xff,y,3\n"),
    ("tsv", b"a\tb\t1\nc\td\t2\nx\xe9y\tz\t3\n"),
    ("jsonl", b'{"sentence1": "a", "sentence2": "b", "label": 1}\n\n'
              b'{"sentence1": "\xc3", "sentence2": "b", "label": 1}\n'),
])
def test_non_utf8_byte_names_file_and_row(tmp_path, ext, content):
    with pytest.raises(DataError, match=rf"stsb-en-train.{ext}, row 3: not valid UTF-8 \(byte 0x"):
        load(tmp_path, "sts", ext, content)


@pytest.mark.parametrize("ext,content", [
    ("csv", "sentence1,sentence2,score\na,b,1\n"),
    ("csv", "a,b,1\n"),
    ("tsv", "premise\thypothesis\tlabel\na\tb\t1\n"),
    ("jsonl", '{"sentence1": "a", "sentence2": "b", "label": 1}\n'),
])
def test_byte_order_mark_is_ignored(tmp_path, ext, content):
    assert load(tmp_path, "sts", ext, "\ufeff" + content) == pairs(("a", "b", 1.0))


# ----------------------------------------------------------------------------- header detection, blank lines

def test_bad_first_row_is_reported_as_data_not_taken_for_a_header(tmp_path):
    with pytest.raises(DataError, match=r"stsb-en-train.csv, row 1: score 'abc' is not a number"):
        load(tmp_path, "sts", "csv", "a b,c d,abc\nx y,z w,2.5\n")


@pytest.mark.parametrize("task,ext,content,expected", [
    ("sts", "csv", "a b,c d,2.5\n", pairs(("a b", "c d", 2.5))),
    ("sts", "tsv", "a b\tc d\t2.5", pairs(("a b", "c d", 2.5))),
    ("xnli", "tsv", "a b\tc d\tcontradiction\n", pairs(("a b", "c d", 2))),
    ("pawsx", "csv", "a b,c d,1\r\n", pairs(("a b", "c d", 1))),
])
def test_one_row_file_without_header_is_one_row(tmp_path, task, ext, content, expected):
    assert load(tmp_path, task, ext, content) == expected


def test_header_only_file_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"stsb-en-train.csv: a header but no data rows"):
        load(tmp_path, "sts", "csv", "sentence1,sentence2,label\n\n")


@pytest.mark.parametrize("ext,row", [("csv", "a,b,{}"), ("tsv", "a\tb\t{}"),
                                     ("jsonl", '{{"sentence1": "a", "sentence2": "b", "label": {}}}')])
def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers(tmp_path, ext, row):
    content = "\n".join([row.format(1), "", "  ", row.format(2), "", "", ""]) + "\n\n"
    assert load(tmp_path, "sts", ext, content) == pairs(("a", "b", 1.0), ("a", "b", 2.0))
    with pytest.raises(DataError, match=r"row 4: score 9.0 is outside"):
        load(tmp_path, "sts", ext, "\n".join([row.format(1), "", "\t ", row.format(9)]))


@pytest.mark.parametrize("content", ["", "\n\n", "\ufeff", "  \n\t\n"])
def test_file_of_blank_lines_is_empty(tmp_path, content):
    with pytest.raises(DataError, match=r"stsb-en-train.tsv: the file is empty"):
        load(tmp_path, "sts", "tsv", content)


def test_tagging_data_must_be_jsonl(tmp_path):
    with pytest.raises(DataError, match=r"ner-en-train.tsv: ner data must be a .jsonl file"):
        load(tmp_path, "ner", "tsv", "tokens\ttags\na b\tO O\n")


# ----------------------------------------------------------------------------- the CLI: exit 2, nothing trained

def test_cli_exits_2_on_a_non_utf8_file(tmp_path, capsys):
    encoder = make_encoder(tmp_path / "encoder")
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"stsb-en-{split}.csv").write_text("a,b,1\nc,d,2\n")
    (data / "stsb-en-test.csv").write_bytes(b"a,b,1\nc\xfe,d,2\n")
    argv = ["--task", "sts", "--encoder", str(encoder), "--data", str(data), "--output-dir", str(tmp_path / "out"),
            "--source-langs", "en", "--eval-langs", "en", "--eval-split", "test", "--max-steps", "1", "--max-length", "32"]
    assert train.main(argv) == 2
    assert "stsb-en-test.csv, row 2: not valid UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- hub: merged UD treebanks

def test_pos_merges_several_treebanks(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        n = {"de_gsd": 2, "de_hdt": 3}[config]
        return Dataset.from_dict({"idx": [f"{config}-{i}" for i in range(n)],
                                  "tokens": [[config, str(i)] for i in range(n)],
                                  "upos": [[0, i] for i in range(n)], "xpos": [["x", "y"]] * n})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_split(TASKS["pos"], "de=de_gsd+de_hdt", "dev", "hub")
    assert calls == [(TASKS["pos"].hub_name, "de_gsd", "validation"), (TASKS["pos"].hub_name, "de_hdt", "validation")]
    assert ds.column_names == ["tokens", "tags"]
    assert ds["tokens"] == [["de_gsd", "0"], ["de_gsd", "1"], ["de_hdt", "0"], ["de_hdt", "1"], ["de_hdt", "2"]]
    assert ds["tags"] == [[0, 0], [0, 1], [0, 0], [0, 1], [0, 2]]
    calls.clear()
    assert len(load_split(TASKS["pos"], "de", "train", "hub")) == 2 and calls[0][1] == "de_gsd"  # the default
    with pytest.raises(DataError, match=r"an empty treebank name"):
        load_split(TASKS["pos"], "de=de_gsd+", "train", "hub")
    with pytest.raises(DataError, match=r"no Universal Dependencies treebank known for 'xx'"):
        load_split(TASKS["pos"], "xx", "train", "hub")
