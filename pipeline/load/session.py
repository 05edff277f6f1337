"""A warehouse connection as the load sees it, and the statement timing every load logs at debug level."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class Session(Protocol):
    """The little a destination needs from a database connection."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def frame(self, sql: str) -> pd.DataFrame: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class Timed:
    """A session that logs each statement's duration at debug level (for `-v` and for tuning)."""

    def __init__(self, inner: Session):
        self.inner = inner

    def _log(self, start: float, sql: str) -> None:
        log.debug("%.2f s  %s", time.perf_counter() - start, " ".join(sql.split())[:140])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        start = time.perf_counter()
        self.inner.execute(sql, params)
        self._log(start, sql)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        start = time.perf_counter()
        rows = self.inner.fetchall(sql, params)
        self._log(start, sql)
        return rows

    def frame(self, sql: str) -> pd.DataFrame:
        start = time.perf_counter()
        out = self.inner.frame(sql)
        self._log(start, sql)
        return out

    def begin(self) -> None:
        self.inner.begin()

    def commit(self) -> None:
        start = time.perf_counter()
        self.inner.commit()
        log.debug("%.2f s  COMMIT", time.perf_counter() - start)

    def rollback(self) -> None:
        self.inner.rollback()


def one_row(session: Session, sql: str) -> tuple[Any, ...]:
    """The one row a query of aggregates answers (the checks, the row counts)."""
    return session.fetchall(sql)[0]
