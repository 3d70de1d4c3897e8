"""The claim on a run folder: at most one process trains or scores into a folder at a time.

A claim is the file ``<folder>/.dlfa-run.lock`` held under an exclusive ``fcntl.flock`` for the
whole command; it holds the claimer's pid, host and start time. Taking it is one atomic step
(so two commands started at the same moment cannot both get it), and the kernel drops the lock
when its process ends in any way, kill -9 included: the lock file a crashed run leaves behind is
stale and the next run takes it over, saying whose it was. A live claim is refused with its
holder named. Released at the end of the command: the lock file is deleted, and so are the
folders the claim created if nothing else was written into them.

Needs POSIX file locks (Linux, macOS; on NFS, a server with locking).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from .arguments import UsageError

logger = logging.getLogger(__name__)

LOCK_FILE = ".dlfa-run.lock"


class RunClaim:
    """The held claim on ``folder`` (see :func:`claim`); :meth:`release` gives it up."""

    def __init__(self, folder: Path, fd: int, created: list[Path]):
        self.folder, self._fd, self._created = folder, fd, created

    def release(self) -> None:
        if self._fd is None:
            return
        (self.folder / LOCK_FILE).unlink(missing_ok=True)  # unlinked while still locked: see claim()
        os.close(self._fd)
        self._fd = None
        for folder in self._created:  # deepest first; a run that wrote nothing leaves no folder
            try:
                folder.rmdir()
            except OSError:
                break

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _holder(fd: int) -> str:
    """The pid, host and start time a lock file records, in words."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "a process that recorded nothing readable"


def _locked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        raise UsageError(f"cannot lock {LOCK_FILE} in its folder ({e.strerror}): the file system does not "
                         "support file locks; choose an --output_dir on a local disk") from None


def claim(folder: Path) -> RunClaim:
    """Claim ``folder`` (created with its parents if missing) for this process.
    Raises ``UsageError`` when a live process holds it."""
    folder = Path(folder)
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    path = folder / LOCK_FILE
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:  # a file in the way, a read-only disk, no permission
            raise UsageError(f"--output_dir: cannot write the run folder {folder} ({e.strerror or e})") from None
        if not _locked(fd):
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(f"{folder} is in use by another run ({holder}); wait for it to end or choose another "
                             "--output_dir")
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder released and deleted the file between our open and our lock: again
    previous = os.fstat(fd).st_size and _holder(fd)
    if previous:
        logger.warning("%s: taking over the claim of a run that ended without releasing it (%s)", folder, previous)
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
    return RunClaim(folder, fd, created)


def claimed(folder: Path) -> bool:
    """Whether a live process holds the claim on ``folder`` (a stale lock file does not count)."""
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
