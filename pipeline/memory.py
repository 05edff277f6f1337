"""Peak resident memory per stage, for the run summary and the benchmark.

On Linux the kernel's high-water mark (VmHWM) can be reset by writing 5 to /proc/self/clear_refs, which
gives an exact peak per stage at no cost; elsewhere the process-lifetime peak (ru_maxrss) is reported.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_CLEAR = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> bool:
    """Start a new peak measurement; False where the platform cannot."""
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def _status_mb(field: str) -> float | None:
    """A memory figure from /proc/self/status (``VmHWM``, ``VmRSS``), in MB; None where there is none."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_mb() -> float:
    """Peak resident set size since the last ``reset_peak`` (or since start), in MB."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


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
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
