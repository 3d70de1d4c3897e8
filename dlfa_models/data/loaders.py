"""Task data loaders: from the hub through ``datasets``, from local files, or the shipped STS sample.

Every loader returns a ``datasets.Dataset`` in the normal form of its task (:mod:`.tasks`). Bad local
data raises ``DataError`` naming the file and row before any training starts.

Local files (docs/data-files.md) are UTF-8, a byte-order mark allowed. Rows are
numbered by their line in the file; blank (whitespace-only) lines anywhere are
skipped. ``.csv`` is quoted CSV whose fields hold no line breaks; ``.tsv`` is
one row per line split at tabs, quotes being ordinary text; either has a header
only if its first row names a known column, else the columns are sentence1,
sentence2, label. ``.jsonl`` is one JSON object per line, values type-checked.
Tagging data is ``.jsonl`` only.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Optional

from datasets import Dataset

from .sts_sample import SAMPLE_PATH
from .tasks import DataError, Task

# Universal Dependencies treebank per language; override with "lang=treebank", or merge several with
# "lang=treebank+treebank" (e.g. "de=de_gsd+de_hdt")
UD_TREEBANKS = {"en": "en_ewt", "de": "de_gsd", "es": "es_ancora", "fr": "fr_gsd", "zh": "zh_gsd", "ru": "ru_syntagrus",
                "ar": "ar_padt", "hi": "hi_hdtb", "ja": "ja_gsd", "it": "it_isdt", "nl": "nl_alpino", "pt": "pt_bosque"}
SPLIT_ALIASES = {"dev": "validation", "validation": "validation", "train": "train", "test": "test"}
SCORE_RANGE = (0.0, 5.0)
PAIR_COLUMNS = ("sentence1", "sentence2", "label")
PAIR_COLUMN_ALIASES = {"premise": "sentence1", "hypothesis": "sentence2", "similarity_score": "label", "score": "label"}
PAIR_HEADER_NAMES = frozenset(PAIR_COLUMNS) | frozenset(PAIR_COLUMN_ALIASES)


def load_split(task: Task, lang: str, split: str, source: str) -> Dataset:
    """One language's split. source: "hub", "sample" (the shipped STS sample) or a folder of files."""
    split = SPLIT_ALIASES.get(split, split)
    if source == "hub":
        return _from_hub(task, lang, split)
    if source == "sample":
        if task.name != "sts":
            raise DataError(f"the shipped sample holds STS data only, not {task.name}")
        return _from_sample(lang, split)
    return _from_folder(task, lang, split, Path(source))


# ----------------------------------------------------------------------------- hub

def _from_hub(task: Task, lang: str, split: str) -> Dataset:
    try:
        return _load_from_hub(task, lang, split)
    except (ConnectionError, OSError) as e:  # offline, hub unreachable, no such config (datasets' errors are OSError)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{task.hub_name} ({lang}, {split}) from the hub: {first}; without network, pass --data "
                        "a folder of files (docs/data-files.md) or --data sample") from None


def _load_from_hub(task: Task, lang: str, split: str) -> Dataset:
    from datasets import concatenate_datasets, load_dataset

    if task.name == "sts":
        ds = load_dataset(task.hub_name, lang, split="dev" if split == "validation" else split)
        return ds.rename_column("similarity_score", "label").select_columns(["sentence1", "sentence2", "label"])
    if task.name == "xnli":
        ds = load_dataset(task.hub_name, lang, split=split)
        return ds.rename_columns({"premise": "sentence1", "hypothesis": "sentence2"})
    if task.name == "pawsx":
        return load_dataset(task.hub_name, lang, split=split).select_columns(["sentence1", "sentence2", "label"])
    if task.name == "ner":
        return load_dataset(task.hub_name, lang, split=split).rename_column("ner_tags", "tags").select_columns(
            ["tokens", "tags"])
    lang, _, spec = lang.partition("=")
    treebanks = [t.strip() for t in spec.split("+")] if spec else [UD_TREEBANKS.get(lang)]
    if treebanks == [None]:
        raise DataError(f"no Universal Dependencies treebank known for {lang!r}; pass it as '{lang}=<treebank>'")
    if not all(treebanks):
        raise DataError(f"an empty treebank name in {lang}={spec!r}; write e.g. '{lang}=a_b+a_c'")
    parts = [load_dataset(task.hub_name, treebank, split=split).rename_column("upos", "tags").select_columns(
        ["tokens", "tags"]) for treebank in treebanks]
    return concatenate_datasets(parts)


# ----------------------------------------------------------------------------- shipped sample

def _from_sample(lang: str, split: str) -> Dataset:
    want = "dev" if split == "validation" else split
    rows = []
    with open(SAMPLE_PATH, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["split"] == want and row["lang"] == lang:
                rows.append({"sentence1": row["sentence1"], "sentence2": row["sentence2"],
                             "label": float(row["similarity_score"])})
    if not rows:
        raise DataError(f"{SAMPLE_PATH}: no {want} rows for language {lang!r}")
    return Dataset.from_list(rows)


# ----------------------------------------------------------------------------- local files

def find_file(task: Task, lang: str, split: str, folder: Path) -> Path:
    """``<prefix>-<lang>-<split>.<csv|tsv|jsonl>``, split "dev" or "validation" for validation."""
    names = ("dev", "validation") if split == "validation" else (split,)
    found = _find(task, lang, names, folder)
    if found:
        return found
    hint = ""
    if split == "test" and _find(task, lang, ("dev", "validation"), folder):
        hint = "; the folder has its dev data: score that with --eval_split dev"
    raise DataError(
        f"no {split} data for language {lang!r} in {folder} "
        f"(looked for {task.file_prefix}-{lang}-{names[0]}.csv/.tsv/.jsonl){hint}"
    )


def _find(task: Task, lang: str, names: tuple[str, ...], folder: Path) -> Optional[Path]:
    for name in names:
        for ext in ("csv", "tsv", "jsonl"):
            path = folder / f"{task.file_prefix}-{lang}-{name}.{ext}"
            if path.exists():
                return path
    return None


def _read_rows(path: Path, task: Task) -> list[tuple[int, dict]]:
    """(row number, record) pairs; a row is numbered by its line in the file, blank lines are skipped."""
    # hand-written, not datasets' csv/json builders: those report a bad row as a pandas/pyarrow parse error
    # without the file's row number, and cannot tell the header-less stsb_multi_mt layout from a headed table
    text = _read_text(path)
    if path.suffix == ".jsonl":
        rows = _jsonl_rows(path, text, task)
    elif task.kind == "tagging":
        raise DataError(f"{path}: {task.name} data must be a .jsonl file of 'tokens' and 'tags' lists")
    else:
        lines = _tsv_lines(text) if path.suffix == ".tsv" else _csv_lines(path, text)
        rows = _table_rows(path, lines)
    if not rows:
        raise DataError(f"{path}: the file is empty")
    return rows


def _read_text(path: Path) -> str:
    """The file as text; UTF-8, with or without the byte-order mark spreadsheet programs write."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}, row {line}: not valid UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8"
                        ) from None


def _is_blank(line: str) -> bool:
    return not line.strip()


def _tsv_lines(text: str) -> list[tuple[int, list[str]]]:
    """Tab-separated cells of every non-blank line; quotes are text like any other character."""
    return [(i, line.removesuffix("\r").split("\t"))
            for i, line in enumerate(text.split("\n"), start=1) if not _is_blank(line)]


def _csv_lines(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """Cells of every non-blank CSV record; a record must fit on its line (a quoted line break is refused).
    A field may be as long as the file (the csv module's own limit, 128 KiB, would be misreported as a quote error)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    lines, start = [], 1
    field_limit = csv.field_size_limit(max(len(text), csv.field_size_limit()))
    try:
        for cells in reader:
            if reader.line_num != start:
                raise DataError(f"{path}, row {start}: a quoted field runs on to line {reader.line_num} "
                                "(an unmatched quote?); fields may not hold line breaks")
            if cells and not (len(cells) == 1 and _is_blank(cells[0])):
                lines.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path}, row {start}: not valid CSV ({e}); check its quotes") from None
    finally:
        csv.field_size_limit(field_limit)
    return lines


def _table_rows(path: Path, lines: list[tuple[int, list[str]]]) -> list[tuple[int, dict]]:
    """Records of a CSV/TSV table: the first row is a header only if it names a known column,
    otherwise every row is data in the order sentence1, sentence2, label (the stsb_multi_mt layout)."""
    if not lines:
        return []
    first_row, first = lines[0]
    if any(cell.strip() in PAIR_HEADER_NAMES for cell in first):
        header = _columns([cell.strip() for cell in first], path, first_row)
        lines = lines[1:]
        if not lines:
            raise DataError(f"{path}: a header but no data rows")
    else:
        header = list(PAIR_COLUMNS)
    rows = []
    for row, cells in lines:
        if len(cells) != len(header):
            raise DataError(f"{path}, row {row}: {len(cells)} columns, expected {len(header)} ({', '.join(header)})")
        rows.append((row, dict(zip(header, cells))))
    return rows


def _columns(names: list[str], path: Path, row: int) -> list[str]:
    """Column names with aliases resolved; two names for one column (e.g. label and score) are refused."""
    columns = [PAIR_COLUMN_ALIASES.get(n, n) for n in names]
    for column in set(columns):
        given = [n for n, c in zip(names, columns) if c == column]
        if len(given) > 1:
            raise DataError(f"{path}, row {row}: {' and '.join(map(repr, given))} both give the {column} column")
    return columns


def _jsonl_rows(path: Path, text: str, task: Task) -> list[tuple[int, dict]]:
    rows = []
    for i, line in enumerate(text.split("\n"), start=1):
        if _is_blank(line):
            continue
        try:
            record = json.loads(line, object_pairs_hook=_object_without_repeated_keys)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, row {i}: not valid JSON ({e.msg})") from None
        except KeyError as e:
            raise DataError(f"{path}, row {i}: key {e.args[0]!r} appears twice") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, row {i}: expected a JSON object, got {_json_type(record)}")
        if task.kind == "pair":
            record = dict(zip(_columns(list(record), path, i), record.values()))
        rows.append((i, record))
    return rows


def _object_without_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    record = dict(pairs)
    if len(record) < len(pairs):
        raise KeyError(next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i])))
    return record


def _json_type(value) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a number")


def _score(value, path: Path, row: int) -> float:
    """An STS score: a number (JSON number or text), finite and inside SCORE_RANGE; true/false is not a number."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        score = float(value)
    except ValueError:
        raise DataError(f"{path}, row {row}: score {value!r} is not a number") from None
    except OverflowError:  # a JSON integer beyond the float range, e.g. 10**400
        raise DataError(f"{path}, row {row}: score {value} is outside {SCORE_RANGE[0]}–{SCORE_RANGE[1]}") from None
    if not (math.isfinite(score) and SCORE_RANGE[0] <= score <= SCORE_RANGE[1]):
        raise DataError(f"{path}, row {row}: score {score} is outside {SCORE_RANGE[0]}–{SCORE_RANGE[1]}")
    return score


def _label_id(value, task: Task, path: Path, row: int) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):  # ASCII digits only: not '²', not '--1'
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(task.labels):
        return value
    if isinstance(value, str) and value in task.labels:
        return task.labels.index(value)
    raise DataError(f"{path}, row {row}: unknown label {value!r}; expected one of {list(task.labels)} or 0..{len(task.labels) - 1}")


def _pair_record(rec: dict, task: Task, path: Path, row: int) -> dict:
    missing = [c for c in PAIR_COLUMNS if c not in rec]
    if missing:
        raise DataError(f"{path}, row {row}: missing column(s) {missing}")
    for column in ("sentence1", "sentence2"):
        if not isinstance(rec[column], str):
            raise DataError(f"{path}, row {row}: {column} must be text, got {_json_type(rec[column])}")
        _check_encodable(rec[column], column, path, row)
    label = _score(rec["label"], path, row) if task.name == "sts" else _label_id(rec["label"], task, path, row)
    return {"sentence1": rec["sentence1"], "sentence2": rec["sentence2"], "label": label}


def _tagging_record(rec: dict, task: Task, path: Path, row: int) -> dict:
    missing = [c for c in ("tokens", "tags") if c not in rec]
    if missing:
        raise DataError(f"{path}, row {row}: missing column(s) {missing}")
    tokens, tags = rec["tokens"], rec["tags"]
    if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
        shape = [f"{len(v)} items" if isinstance(v, list) else _json_type(v) for v in (tokens, tags)]
        raise DataError(f"{path}, row {row}: tokens and tags must be lists of equal length, "
                        f"got {shape[0]} and {shape[1]}")
    if not tokens:
        raise DataError(f"{path}, row {row}: a sentence without tokens")
    for j, token in enumerate(tokens):
        if not isinstance(token, str):
            raise DataError(f"{path}, row {row}: token {j} is {_json_type(token)}, not a string")
        _check_encodable(token, f"token {j}", path, row)
    return {"tokens": tokens, "tags": [_label_id(t, task, path, row) for t in tags]}


def _check_encodable(text: str, what: str, path: Path, row: int) -> None:
    """JSON may escape half of a UTF-16 surrogate pair ("\\ud800"): text no tokenizer or Arrow table takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(f"{path}, row {row}: {what} holds an unpaired surrogate escape "
                        f"({text[e.start]!r} at character {e.start}), not text") from None


def _from_folder(task: Task, lang: str, split: str, folder: Path) -> Dataset:
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    path = find_file(task, lang, split, folder)
    record = _pair_record if task.kind == "pair" else _tagging_record
    return Dataset.from_list([record(rec, task, path, row) for row, rec in _read_rows(path, task)])


def limit(ds: Dataset, n: Optional[int], seed: int) -> Dataset:
    """At most n rows, a seeded random subset."""
    if n is None or len(ds) <= n:
        return ds
    return ds.shuffle(seed=seed).select(range(n))
