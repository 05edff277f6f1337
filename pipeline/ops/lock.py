"""Single flight: one run at a time per lock file, and no lock outlives its process.

An exclusive ``flock`` is held for the whole run. The kernel releases it when the process exits for any
reason, SIGKILL included, so a killed run can never block the next one; the file's content (who holds it)
is only there for the message the second invocation prints. A lock file removed while a run holds it (``rm
-rf build/``) no longer guards anything: a second run could start; the load then refuses to commit for the run
that is no longer the latest (``Destination._still_ours``), so two runs never both load.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipeline.core.errors import AlreadyRunning

__all__ = ["AlreadyRunning", "new_run_id", "single_flight"]


def new_run_id() -> str:
    """When the run started (UTC) and a random suffix: sortable, and unique across hosts."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed, nor replaced, since it was opened)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextmanager
def single_flight(path: str, run_id: str) -> Iterator[None]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Removed between our open and our lock (by a run ending, or by hand): a lock on a file nobody else
            # can open guards nothing; take the one the path names now.
            while not _same_file(fd, path):
                os.close(fd)
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            try:
                info = json.loads(holder)
                who = f"run {info['run_id']} (pid {info['pid']} on {info['host']}, started {info['started']})"
            except (ValueError, KeyError):
                who = "another run"
            raise AlreadyRunning(f"{who} is still in progress; lock {path}") from None
        me = {
            "run_id": run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
