"""Named points where the fault-injection tests interrupt a run for real.

``SPARKIFY_FAULT_KILL_AT=before-commit`` makes the process SIGKILL itself on reaching that point: no cleanup,
no finally blocks, exactly what the kernel's OOM killer or a machine reboot does. ``SPARKIFY_FAULT_FAIL_AT``
raises an error there instead, as a failed statement would; ``SPARKIFY_FAULT_PAUSE_AT`` waits there, so a test
can send the run a signal at a known point. Unset (always, in production), a checkpoint
costs three dictionary lookups.
"""

from __future__ import annotations

import os
import signal
import sys
import time

ENV = "SPARKIFY_FAULT_KILL_AT"
FAIL_ENV = "SPARKIFY_FAULT_FAIL_AT"
# Waits there (up to a minute, or until the file named by RESUME_ENV exists) after saying so on stderr: for
# tests that signal a run, or start another, at a known point.
PAUSE_ENV = "SPARKIFY_FAULT_PAUSE_AT"
RESUME_ENV = "SPARKIFY_FAULT_RESUME_WHEN"


class InjectedFault(RuntimeError):
    pass


def checkpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FAIL_ENV) == name:
        raise InjectedFault(f"injected failure at {name}")
    if os.environ.get(PAUSE_ENV) == name:
        print(f"fault: paused at {name}", file=sys.stderr, flush=True)
        resume = os.environ.get(RESUME_ENV)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (resume and os.path.exists(resume)):
            time.sleep(0.05)
