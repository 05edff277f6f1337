"""Named points where the fault-injection tests kill the process for real.

``SPARKIFY_FAULT_KILL_AT=before-commit`` makes the process SIGKILL itself on reaching that point: no
cleanup, no finally blocks, exactly what the kernel's OOM killer or a machine reboot does. Unset (always,
in production), a checkpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "SPARKIFY_FAULT_KILL_AT"


def checkpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
