"""Bounded exponential backoff for transient faults; permanent ones fail at once.

Transient: the network or the service hiccuped (S3 5xx or throttling, a connection reset or timed out,
DuckDB's file held by another process). Retrying the same step is safe because every step is idempotent
(reads) or transactional (the load). Permanent: access denied, a missing bucket, bad SQL, a failed check:
retrying would only delay the same answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "502",
    "503",
    "504",
    "RequestLimitExceeded",
}
_TRANSIENT_TEXT = (
    "connection reset",
    "connection refused",
    "broken pipe",
    "timed out",
    "timeout",
    "server closed the connection",
    "could not set lock",
    "connection was closed",
    "unexpected eof",
    "connection aborted",
    "network is unreachable",
    "slow down",
    "503",
)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same step may succeed."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if _transient_one(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _transient_one(e: BaseException) -> bool:
    from pipeline.core.errors import CheckFailed

    if isinstance(e, (CheckFailed, PermissionError, FileNotFoundError)):
        return False
    if isinstance(e, (ConnectionError, TimeoutError)):
        return True
    code = getattr(e, "response", {}).get("Error", {}).get("Code") if hasattr(e, "response") else None
    if code is not None:
        return str(code) in _TRANSIENT_CODES
    name = type(e).__name__
    if name in (
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ServerDisconnectedError",
        "ClientOSError",
        "InterfaceError",
    ):
        return True
    if name in ("ProgrammingError", "NoCredentialsError", "ParamValidationError"):
        return False
    text = str(e).lower()
    return any(t in text for t in _TRANSIENT_TEXT)


def with_retries(
    step: str, fn: Callable[[], T], attempts: int = 4, base_delay: float = 1.0, max_delay: float = 30.0
) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            log.warning(
                "%s failed (transient: %s: %s); attempt %d of %d in %.1f s",
                step,
                type(exc).__name__,
                str(exc).splitlines()[0][:300],
                attempt + 1,
                attempts,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
