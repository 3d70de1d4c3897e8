"""Strict JSON files written atomically (``results.json``, ``run_config.json``, ``sweep.json``, ``summary.json``).

Strict: a non-finite float (a NaN score, an undefined statistic) is written as ``null``, never as
the bare ``NaN`` that other JSON readers reject. Atomic: the text goes to a temporary file in the
same folder, is flushed to disk, then renamed over the target, so a kill or a full disk mid-write
leaves either the old file or the new one, never a truncated file that marks a run as done.
"""
from __future__ import annotations

import json
import math
import os
import uuid
from enum import Enum
from pathlib import Path

import numpy as np


def strict(value):
    """``value`` as plain JSON types: non-finite floats -> None, tuples -> lists, enums and numpy
    scalars and arrays -> their values. Raises ``TypeError`` for anything else that JSON cannot hold."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


def write_json(path, data) -> None:
    """Write ``strict(data)`` to ``path`` atomically (indented UTF-8, the umask's permissions)."""
    path = Path(path)
    text = json.dumps(strict(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, as open() gives
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))
