"""Progress on long work: a live bar on a terminal, plain periodic log lines when not (cron, CI).

``configure`` is called once by the CLI; library use (notebooks, tests) gets log lines only.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("pipeline.ops.progress")

_bars = False
_open = 0  # bars on screen now: while there are any, log lines go through tqdm.write (see ``logs.py``)
LOG_EVERY_SECONDS = 15.0


def configure(quiet: bool) -> None:
    global _bars
    _bars = not quiet and sys.stderr.isatty()


class Progress:
    def __init__(self, desc: str, total: float | None = None, unit: str = "it"):
        self.desc, self.total, self.unit = desc, total, unit
        self.n = 0.0
        self._last_log = time.monotonic()
        self._bar: Any = None
        if _bars:
            from tqdm import tqdm

            global _open
            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", file=sys.stderr, leave=False)
            _open += 1

    def update(self, n: float = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_SECONDS:
            self._last_log = now
            done = f"{self.n:,.0f}" + (f" of {self.total:,.0f}" if self.total else "")
            log.info("%s: %s %s", self.desc, done, self.unit)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            global _open
            self._bar.close()
            _open -= 1


def showing() -> bool:
    """Whether a progress bar is on the terminal now."""
    return _open > 0
