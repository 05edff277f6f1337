"""The errors the command line maps to exit codes, in a module that imports nothing heavy.

They are defined here, not next to the code that raises them, so ``python -m pipeline --help``, ``config``,
``runs`` and ``check`` never import pandas, pyarrow or fsspec just to be able to catch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class _Failure(Protocol):
    """A failed check (``checks.CheckResult``), as far as the message needs it."""

    def describe(self) -> str: ...


class SourceError(RuntimeError):
    """A source prefix that cannot be listed (missing, not a folder, access denied)."""


class FetchError(RuntimeError):
    """A source file that could not be read, for a reason that may pass (retried by the caller)."""


class SchemaOutdated(RuntimeError):
    """The warehouse's tables were created by an older version of the pipeline."""


class SchemaMissing(RuntimeError):
    """The configured warehouse holds none of the star tables: a wrong path or schema, or nothing loaded yet."""


class AlreadyRunning(RuntimeError):
    """Another run holds the lock, or took over from this one (its lock file was removed while it ran)."""


class TakenOver(AlreadyRunning):
    """A later run started while this one ran (its lock file was removed) and marked it abandoned."""


class WarehouseBusy(RuntimeError):
    """The DuckDB file is held by another process (an analyst's connection): try later."""


class WarehouseUnreachable(RuntimeError):
    """The warehouse refused or did not answer the connection (or refused its credentials)."""


class TooManyRejects(RuntimeError):
    """Rejected input weighs more than ``rejects.max_fraction`` of what was read."""


class Interrupted(BaseException):
    """The run was sent SIGINT or SIGTERM (a BaseException, like KeyboardInterrupt: no handler swallows it)."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")


class CheckFailed(RuntimeError):
    """A data-quality check failed inside the load transaction (which was rolled back)."""

    def __init__(self, failures: Sequence[_Failure]):
        self.failures = failures
        super().__init__("data-quality checks failed:\n" + "\n".join("  " + f.describe() for f in failures))
