"""Fuzzing the local file readers (.csv, .tsv, .jsonl).

Files are written from rows we know, with the awkward parts of real files (quotes, separators inside
text, byte-order marks, CRLF, blank lines, headers or none), then corrupted or not. A reader must
load exactly the rows written, or raise DataError naming the file (and the row, where the corruption
is in one known row) - never anything else. Derandomized: CI sees the same cases on every run.
"""
import csv
import io
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlfa_models.data import NER_LABELS, PAIR_HEADER_NAMES, TASKS, DataError, load_split

FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREFIX = {"sts": "stsb", "xnli": "xnli", "ner": "ner"}
XNLI_LABELS = TASKS["xnli"].labels
SPECIALS = '"\',;\t \\{}[]:'
BLANKS = ["", " ", "\t", "  \t "]

# text a sentence can hold in every format: no line breaks, no byte-order mark, not a column name on its own
texts = st.text(st.one_of(st.sampled_from(SPECIALS), st.characters(exclude_categories=("Cs",),
                                                                    exclude_characters="\n\r\ufeff")),
                max_size=10).filter(lambda s: s.strip() not in PAIR_HEADER_NAMES)


@st.composite
def tables(draw):
    """(task, extension, rows as the loader must return them, rows as written, header)."""
    task = draw(st.sampled_from(["sts", "xnli", "ner"]))
    ext = "jsonl" if task == "ner" else draw(st.sampled_from(["csv", "tsv", "jsonl"]))  # tagging data is JSONL only
    text = texts.filter(lambda s: "\t" not in s) if ext == "tsv" else texts
    n = draw(st.integers(1, 6))
    if task == "ner":
        tags = st.lists(st.integers(0, len(NER_LABELS) - 1), min_size=1, max_size=5)
        rows = [{"tokens": draw(st.lists(text, min_size=len(t), max_size=len(t))), "tags": t}
                for t in draw(st.lists(tags, min_size=n, max_size=n))]
        written = [{"tokens": r["tokens"], "tags": [draw(st.sampled_from([i, NER_LABELS[i]])) for i in r["tags"]]}
                   for r in rows]
        return task, ext, rows, written, False
    rows, written = [], []
    for _ in range(n):
        s1, s2 = draw(text), draw(text)
        if task == "sts":
            label = draw(st.floats(0, 5) | st.integers(0, 5).map(float))
            shown = label
        else:
            label = draw(st.integers(0, 2))
            shown = draw(st.sampled_from([label, XNLI_LABELS[label]]))
        rows.append({"sentence1": s1, "sentence2": s2, "label": label})
        written.append({"sentence1": s1, "sentence2": s2, "label": shown})
    return task, ext, rows, written, draw(st.booleans())


def render(ext, written, header, draw) -> tuple[bytes, list[int]]:
    """The file's bytes and the line number of each row; column names, blank lines, BOM and line ends drawn."""
    if ext == "jsonl":
        score = draw(st.booleans())  # STS files may call the label "score"
        lines = [json.dumps({("score" if k == "label" and score and "score" not in r else k): v for k, v in r.items()}
                            if isinstance(r, dict) else r, ensure_ascii=draw(st.booleans())) for r in written]
    else:
        names = [draw(st.sampled_from(["sentence1", "premise"])), draw(st.sampled_from(["sentence2", "hypothesis"])),
                 draw(st.sampled_from(["label", "score", "similarity_score"]))]
        values = ([names] if header else []) + [
            [r["sentence1"], r["sentence2"], repr(r["label"]) if isinstance(r["label"], float) else str(r["label"])]
            for r in written]
        if ext == "csv":
            quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
            lines = []
            for v in values:
                out = io.StringIO()
                csv.writer(out, lineterminator="", quoting=quoting).writerow(v)
                lines.append(out.getvalue())
        else:
            lines = ["\t".join(v) for v in values]
    body, numbers = [], []
    for i, line in enumerate(lines):
        body += draw(st.lists(st.sampled_from(BLANKS), max_size=2)) if i else []  # blank lines between rows
        body.append(line)
        numbers.append(len(body))
    body += draw(st.lists(st.sampled_from(BLANKS), max_size=3))  # trailing blank lines
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(body) + draw(st.sampled_from(["", eol]))
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode("utf-8"), numbers[1:] if header else numbers


def load(folder, task, ext, content: bytes):
    for old in folder.iterdir():
        old.unlink()
    (folder / f"{PREFIX[task]}-en-train.{ext}").write_bytes(content)
    return load_split(TASKS[task], "en", "train", str(folder)).to_list()


def well_formed(task, rows):
    """What any loaded row must be, whatever the file held."""
    for r in rows:
        if task == "ner":
            assert isinstance(r["tokens"], list) and all(isinstance(t, str) for t in r["tokens"])
            assert len(r["tokens"]) == len(r["tags"]) > 0 and all(0 <= t < len(NER_LABELS) for t in r["tags"])
        else:
            assert isinstance(r["sentence1"], str) and isinstance(r["sentence2"], str)
            if task == "sts":
                assert math.isfinite(r["label"]) and 0 <= r["label"] <= 5
            else:
                assert r["label"] in (0, 1, 2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(FUZZ, max_examples=1200)
@given(st.data())
def test_files_load_exactly_the_rows_written(folder, data):
    task, ext, rows, written, header = data.draw(tables())
    content, _ = render(ext, written, header, data.draw)
    assert load(folder, task, ext, content) == rows


WRONG_VALUES = {
    "sentence1": [None, 3, True, ["a"], {"a": 1}], "sentence2": [None, 2.5, False, []],
    "label": [None, True, False, "abc", [1], {"x": 1}, 9, -1, float("inf")],
    "tokens": [None, "a b", 3, {"a": "O"}, [None], [1]], "tags": [None, "O", [], ["XYZ"], [None], [True], [1.0]],
}


@settings(FUZZ, max_examples=700)
@given(st.data())
def test_a_wrong_json_value_is_reported_with_its_row(folder, data):
    task, _, _, written, _ = data.draw(tables())
    k = data.draw(st.integers(0, len(written) - 1))
    bad = dict(written[k])
    change = data.draw(st.sampled_from(["value", "not an object", "missing", "label and score"]))
    if change == "value":
        key = data.draw(st.sampled_from(sorted(bad)))
        bad[key] = data.draw(st.sampled_from(WRONG_VALUES[key] + ([1.5] if task == "xnli" and key == "label" else [])))
    elif change == "not an object":
        bad = data.draw(st.sampled_from([[], [1, 2], "text", 3, None, True]))
    elif change == "missing":
        del bad[data.draw(st.sampled_from(sorted(bad)))]
    elif task != "ner":
        bad["score"] = bad["label"]
    else:
        bad["tokens"] = bad["tokens"] + ["extra"]  # one token more than tags
    content, lines = render("jsonl", written[:k] + [bad] + written[k + 1:], False, data.draw)
    with pytest.raises(DataError, match=rf"{PREFIX[task]}-en-train.jsonl, row {lines[k]}: "):
        load(folder, task, "jsonl", content)


@settings(FUZZ, max_examples=700)
@given(st.data())
def test_random_bytes_load_well_formed_rows_or_raise_data_error(folder, data):
    task, ext, _, written, header = data.draw(tables())
    content, _ = render(ext, written, header, data.draw)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(content)))
        insert = data.draw(st.binary(min_size=1, max_size=3) | st.sampled_from(SPECIALS + "\n\r").map(str.encode)
                           | st.sampled_from([b"null", b"true", b"\xef\xbb\xbf", b"\n\n", b"\t\t", b'""']))
        content = content[:at] + insert + content[at:]
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = content.count(b"\n", 0, e.start) + 1
        with pytest.raises(DataError, match=rf"-en-train.{ext}, row {line}: not valid UTF-8"):
            load(folder, task, ext, content)
        return
    try:
        rows = load(folder, task, ext, content)
    except DataError as e:
        assert f"{PREFIX[task]}-en-train.{ext}" in str(e)
        return
    well_formed(task, rows)
    assert len(rows) <= sum(1 for line in text.split("\n") if line.strip())  # one row per line at most
