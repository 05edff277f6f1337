"""SIGTERM and SIGINT end a run the same way: rolled back, logged, recorded as interrupted, metrics written.

SIGTERM is what ``timeout``, systemd and Kubernetes send; by default Python dies of it at once (exit 143, no
log line, the run history left ``running``). While a run is in progress both signals raise ``Interrupted`` in
the main thread. Whatever turns that exception into another (DuckDB reports an interrupted query as
``RuntimeError: Query interrupted``), ``received`` still says the run was interrupted, and by which signal, and
code that must not swallow it (a housekeeping step's catch-all) asks ``received`` before going on.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from pipeline.core.errors import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
_active = threading.Event()


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def received() -> int | None:
    """The first signal that interrupted the run in progress, if any (None outside ``handled``)."""
    return _received[0] if _received and _active.is_set() else None


def last_received() -> int | None:
    """The first signal the last run in ``handled`` received, once it has ended (for its exit code)."""
    return _received[0] if _received else None


def rearm() -> None:
    """Take the signals back from a library that installed handlers of its own (``ray.init`` sets SIGTERM to
    ``sys.exit``), while a run is in progress."""
    if _active.is_set() and threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            signal.signal(s, _handler)


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``Interrupted`` while open (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {s: signal.signal(s, _handler) for s in _SIGNALS}
    _active.set()
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _active.clear()
