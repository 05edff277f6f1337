"""Peak resident memory per stage, for the run summary and the benchmark.

A daemon thread samples the process's resident size (VmRSS) every 10 ms; each stage reads the highest sample
since it began. The kernel's own high-water mark (VmHWM, ``ru_maxrss``) is left alone: resetting it through
``/proc/self/clear_refs`` would also change what ``/usr/bin/time``, process accounting and an operator's
monitoring report for the whole run. Where /proc is missing, the process-lifetime peak is reported.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from pathlib import Path

_STATUS = Path("/proc/self/status")
INTERVAL = 0.01


def _status_mb(field: str) -> float | None:
    """A memory figure from /proc/self/status (``VmHWM``, ``VmRSS``), in MB; None where there is none."""
    try:
        with _STATUS.open() as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def lifetime_peak_mb() -> float:
    """The process's peak resident size since it started, as the kernel counts it."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class PeakSampler:
    """Peaks of resident size over intervals (stages, which may nest), sampled by one background thread."""

    def __init__(self, interval: float = INTERVAL):
        self.interval = interval
        self._open: dict[int, float] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if _status_mb("VmRSS") is not None:
            self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self._sample()

    def _sample(self) -> None:
        now = rss_mb()
        with self._lock:
            for k, peak in self._open.items():
                if now > peak:
                    self._open[k] = now

    def begin(self) -> int:
        """Start an interval; ``end`` with the token returned gives its peak."""
        with self._lock:
            self._next += 1
            self._open[self._next] = rss_mb()
            return self._next

    def end(self, token: int) -> float:
        """The highest resident size sampled since ``begin``; without /proc, the lifetime peak.

        A lower bound: a spike shorter than the interval, or inside a call that holds the GIL, can pass
        unseen. ``make bench`` samples from outside the process, and the kernel's own peak is left intact."""
        self._sample()
        with self._lock:
            peak = self._open.pop(token, 0.0)
        return peak if self._thread is not None else lifetime_peak_mb()


_SAMPLER: PeakSampler | None = None


def sampler() -> PeakSampler:
    """The process's one sampler, started on first use."""
    global _SAMPLER
    if _SAMPLER is None:
        _SAMPLER = PeakSampler()
    return _SAMPLER


def rss_mb() -> float:
    """Resident set size now, in MB (0 where /proc is missing)."""
    return _status_mb("VmRSS") or 0.0


def release() -> None:
    """Give memory that freed frames left in the allocators back to the operating system.

    After the batches, glibc's heap and pyarrow's pool keep hundreds of MB of freed pages; handing them back
    before the load leaves the warehouse's own memory limit as the only large consumer, so the run's peak
    does not grow with the number of batches that came before.
    """
    import contextlib
    import ctypes

    import pyarrow as pa

    # No gc.collect(): frames are freed by reference counting, and a collection per batch found nothing to free.
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
