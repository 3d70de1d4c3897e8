"""The multilingual-e5 conversion's files on disk: permissions that follow the umask, and the
temporary folders of killed conversions cleaned up (issue 19, item 20)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from dlfa_models.encoders import e5_offline
from e5_assets import tiny_e5

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.bin"
    path.write_bytes(tiny_e5()[0])
    return path


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_every_converted_file_honours_the_umask(tiny, tmp_path, umask_027):
    out = e5_offline.convert(tiny, tmp_path / "out")
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes["model.safetensors"] == 0o640 and set(modes.values()) == {0o640}, modes


def test_a_killed_conversions_folder_is_removed_and_live_or_foreign_ones_kept(tiny, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    host, dead = socket.gethostname(), _dead_pid()
    names = {"dead": f".out.partial-{host}-{dead}-0123abcd", "legacy_dead": f".out.partial-{dead}-89abcdef",
             "live": f".out.partial-{host}-{os.getpid()}-0123abcd", "other_host": f".out.partial-elsewhere-{dead}-0123abcd",
             "other_folder": f".other.partial-{host}-{dead}-0123abcd"}
    for name in names.values():
        (cache / name).mkdir()
        (cache / name / "model.safetensors").write_bytes(b"x" * 10)
    e5_offline.convert(tiny, cache / "out")
    left = sorted(p.name for p in cache.iterdir())
    assert left == sorted([names["live"], names["other_host"], names["other_folder"], "out"])
