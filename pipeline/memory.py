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


def peak_mb() -> float:
    """Peak resident set size since the last ``reset_peak`` (or since start), in MB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
