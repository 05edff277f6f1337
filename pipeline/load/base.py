"""What every warehouse does the same way: schema DDL, the transactional merge, and the checks.

A destination only says how to open a session and how to get staged Parquet files into a temporary
table; the SQL around that comes from ``sql.py`` and ``checks.py`` for every target alike.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from .. import faults
from ..checks import CheckFailed, CheckResult, integrity_checks, reconciliation_check, run_checks
from ..schema import ALL_TABLES, LOADED_FILES, RUNS, TABLES, Table
from ..sql import Dialect, quote, validate_identifier

log = logging.getLogger(__name__)


class Session(Protocol):
    """The little a destination needs from a database connection."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def frame(self, sql: str) -> pd.DataFrame: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class _Timed:
    """A session that logs each statement's duration at debug level (for `-v` and for tuning)."""

    def __init__(self, inner: Session):
        self.inner = inner

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        start = time.perf_counter()
        self.inner.execute(sql, params)
        log.debug("%.2f s  %s", time.perf_counter() - start, " ".join(sql.split())[:140])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        start = time.perf_counter()
        rows = self.inner.fetchall(sql, params)
        log.debug("%.2f s  %s", time.perf_counter() - start, " ".join(sql.split())[:140])
        return rows

    def frame(self, sql: str) -> pd.DataFrame:
        return self.inner.frame(sql)

    def begin(self) -> None:
        self.inner.begin()

    def commit(self) -> None:
        start = time.perf_counter()
        self.inner.commit()
        log.debug("%.2f s  COMMIT", time.perf_counter() - start)

    def rollback(self) -> None:
        self.inner.rollback()


def scalar(session: Session, sql: str) -> Any:
    rows = session.fetchall(sql)
    return rows[0][0]


@dataclass(frozen=True)
class StagedTable:
    table: Table
    files: list[str]
    rows: int
    # The folder holding every part (COPY loads a whole prefix at once).
    prefix: str = ""


@dataclass(frozen=True)
class Staged:
    """A run's star frames as Parquet files, ready to bulk-load."""

    run_id: str
    location: str
    tables: dict[str, StagedTable]


@dataclass
class LoadResult:
    rows_merged: dict[str, int] = field(default_factory=dict)
    rows_total: dict[str, int] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)


def staging_table(table: Table) -> str:
    return f"stg_{table.name}"


class Destination(ABC):
    dialect: Dialect

    def __init__(self, schema: str):
        self.schema = validate_identifier(schema, "warehouse.schema")

    # ------------------------------------------------------------------ to implement per target

    @abstractmethod
    @contextmanager
    def session(self) -> Iterator[Session]:
        """An open connection, closed on exit."""

    @abstractmethod
    def stage_into(self, session: Session, staged: StagedTable, temp_name: str) -> None:
        """Make ``temp_name`` (a temporary table or view) hold the staged files, typed like the target table.

        Temporary objects last as long as the session, which ends with the load, so nothing drops them.
        """

    def describe(self) -> str:
        return self.dialect.name

    def preflight(self, frames: dict[str, pd.DataFrame]) -> None:
        """Refuse, before it is staged, data this target cannot hold (called per batch). Nothing by default."""
        return None

    # ------------------------------------------------------------------ shared

    def _ddl(self) -> list[str]:
        return [self.dialect.create_schema(self.schema)] + [
            self.dialect.create_table(self.schema, t) for t in ALL_TABLES
        ]

    def create_schema(self) -> None:
        with self.session() as s:
            s.begin()
            for stmt in self._ddl():
                s.execute(stmt)
            s.commit()

    def drop_schema(self) -> None:
        """Drop the star tables (not the schema itself, which may hold other things)."""
        with self.session() as s:
            s.begin()
            for stmt in self.dialect.drop_schema_tables(self.schema):
                s.execute(stmt)
            s.commit()

    def counts(self, session: Session) -> dict[str, int]:
        return {
            t.name: int(scalar(session, f"SELECT COUNT(*) FROM {self.dialect.qualified(self.schema, t.name)}"))
            for t in TABLES
        }

    def load(self, staged: Staged, full_refresh: bool = False) -> LoadResult:
        """Merge the five staged star tables and the ledger, and check them, in one transaction.

        The tables must exist (``create_schema``; a run creates them before it reads the ledger).

        All land, or none: a failure anywhere (a staged file, a check, a dropped connection, the process
        killed) leaves the star tables and the ledger as they were. With ``full_refresh`` the star tables
        and the ledger are emptied first, inside the same transaction, so the result equals a clean build.
        Rows staged by different batches may share a key (the same event in two files, a user in two
        batches); they are reduced to one per key, the newest by version column, before the merge.
        """
        result = LoadResult()
        with self.session() as raw:
            s = _Timed(raw)
            s.begin()
            try:
                if full_refresh:
                    for table in (*reversed(TABLES), LOADED_FILES):
                        s.execute(f"DELETE FROM {self.dialect.qualified(self.schema, table.name)}")
                loaded = [t for t in (*TABLES, LOADED_FILES) if t.name in staged.tables]
                source: dict[str, str] = {}
                for table in loaded:
                    st = staged.tables[table.name]
                    temp = staging_table(table)
                    self.stage_into(raw, st, temp)
                    # Parts of different batches may share keys; counting is cheaper than always reducing.
                    if len(st.files) > 1 and int(scalar(s, self.dialect.repeated_keys(table, quote(temp)))):
                        deduped = temp + "_one"
                        s.execute(self.dialect.one_per_key(table, temp, deduped))
                        temp = deduped
                    source[table.name] = temp
                    for stmt in self.dialect.merge(self.schema, table, temp):
                        s.execute(stmt)
                    result.rows_merged[table.name] = st.rows
                    log.debug("merged %s: %d staged rows", table.name, st.rows)
                    faults.checkpoint(f"merged-{table.name}")
                plays = source[TABLES[-1].name]
                distinct_plays = int(scalar(s, f"SELECT COUNT(*) FROM {quote(plays)}"))
                checks = integrity_checks(self.dialect, self.schema)
                checks.append(reconciliation_check(self.dialect, self.schema, plays, distinct_plays))
                result.checks = run_checks(checks, lambda sql: scalar(s, sql))
                failures = [c for c in result.checks if not c.ok]
                if failures:
                    raise CheckFailed(failures)
                result.rows_total = self.counts(s)
                faults.checkpoint("before-commit")
                s.commit()
            except BaseException:
                s.rollback()
                raise
        faults.checkpoint("after-commit")
        return result

    # ------------------------------------------------------------------ ledger and run history

    def query(self, sql: str) -> pd.DataFrame:
        """A read-only query as a frame (analytics, notebooks, the report)."""
        with self.session() as s:
            return s.frame(sql)

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.session() as s:
            return s.fetchall(sql, params)

    def loaded_files(self) -> dict[str, tuple[int, str]]:
        """url -> (size, version) of every file loaded so far."""
        t = self.dialect.qualified(self.schema, LOADED_FILES.name)
        return {
            url: (int(size), str(version))
            for url, size, version in self._select(f'SELECT "url", "size", "version" FROM {t}')
        }

    def stored_song_lookup(self) -> pd.DataFrame:
        rows = self._select(self.dialect.song_lookup(self.schema))
        frame = pd.DataFrame(rows, columns=["song", "artist", "length", "song_id", "artist_id"])
        frame["length"] = frame["length"].astype("float64")
        return frame

    def _runs(self) -> str:
        return self.dialect.qualified(self.schema, RUNS.name)

    def start_run(self, run_id: str, started_at: datetime) -> int:
        """Mark runs left 'running' by a killed process as abandoned, then record this one.

        Only called while holding the run lock, so no other run can be in progress.
        """
        p = self.dialect.param
        with self.session() as s:
            s.begin()
            rows = s.fetchall(f"SELECT COUNT(*) FROM {self._runs()} WHERE \"status\" = 'running'")
            abandoned = int(rows[0][0])
            s.execute(f"UPDATE {self._runs()} SET \"status\" = 'abandoned' WHERE \"status\" = 'running'")
            s.execute(
                f'INSERT INTO {self._runs()} ("run_id", "started_at", "status") VALUES ({p}, {p}, {p})',
                (run_id, started_at, "running"),
            )
            s.commit()
        return abandoned

    def end_run(
        self,
        run_id: str,
        status: str,
        ended_at: datetime,
        files: int,
        records: int,
        rejected: int,
        rows_merged: dict[str, int],
        error: str | None,
    ) -> None:
        p = self.dialect.param
        with self.session() as s:
            s.begin()
            s.execute(
                f'UPDATE {self._runs()} SET "ended_at" = {p}, "status" = {p}, "files_read" = {p}, '
                f'"records_read" = {p}, "records_rejected" = {p}, "rows_merged" = {p}, "error" = {p} '
                f'WHERE "run_id" = {p}',
                (
                    ended_at,
                    status,
                    files,
                    records,
                    rejected,
                    json.dumps(rows_merged),
                    (error or "")[:4000] or None,
                    run_id,
                ),
            )
            s.commit()

    def run_history(self, limit: int = 20) -> list[dict[str, Any]]:
        cols = RUNS.column_names
        rows = self._select(
            f'SELECT {", ".join(quote(c) for c in cols)} FROM {self._runs()} ORDER BY "started_at" DESC '
            f"LIMIT {int(limit)}"
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def check(self) -> list[CheckResult]:
        """The integrity checks alone, against what is committed."""
        with self.session() as s:
            return run_checks(integrity_checks(self.dialect, self.schema), lambda sql: scalar(s, sql))
