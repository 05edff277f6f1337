"""SIGTERM and SIGINT end a run the same way: rolled back, logged, recorded as interrupted, metrics written.

SIGTERM is what ``timeout``, systemd and Kubernetes send; by default Python dies of it at once (exit 143, no
log line, the run history left ``running``). While a run is in progress both signals raise ``Interrupted`` in
the main thread, once: a second signal during the clean-up is noted, not raised, so the clean-up finishes.
Whatever turns the exception into another (DuckDB reports an interrupted query as ``RuntimeError: Query
interrupted``), ``received`` still says the run was interrupted, and by which signal.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import Interrupted

_received: list[int] = []


def _handler(signum: int, frame: FrameType | None) -> None:
    first = not _received
    _received.append(signum)
    if first:
        raise Interrupted(signum)


def received() -> int | None:
    """The first signal that interrupted the current run, if any."""
    return _received[0] if _received else None


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``Interrupted`` while open (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
