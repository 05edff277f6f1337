"""What every warehouse does the same way: schema DDL, the transactional merge, and the checks.

A destination only says how to open a session and how to get staged Parquet files into a temporary
table; the SQL around that comes from ``sql.py`` and ``checks.py`` for every target alike.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from ..checks import CheckFailed, CheckResult, integrity_checks, reconciliation_check, run_checks
from ..schema import TABLES, Table
from ..sql import Dialect, quote, validate_identifier

log = logging.getLogger(__name__)


class Session(Protocol):
    """The little a destination needs from a database connection."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


def scalar(session: Session, sql: str) -> Any:
    rows = session.fetchall(sql)
    return rows[0][0]


@dataclass(frozen=True)
class StagedTable:
    table: Table
    files: list[str]
    rows: int


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
        """Create temporary table ``temp_name`` shaped like the target table, holding the staged files."""

    def describe(self) -> str:
        return self.dialect.name

    def preflight(self, frames: dict[str, pd.DataFrame]) -> None:
        """Refuse, before anything is staged, data this target cannot hold. Nothing to refuse by default."""
        return None

    # ------------------------------------------------------------------ shared

    def _ddl(self) -> list[str]:
        return [self.dialect.create_schema(self.schema)] + [self.dialect.create_table(self.schema, t) for t in TABLES]

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

    def load(self, staged: Staged, expected_songplays: int) -> LoadResult:
        """Merge all five staged tables and check them in one transaction: all land, or none."""
        result = LoadResult()
        with self.session() as s:
            s.begin()
            try:
                for stmt in self._ddl():
                    s.execute(stmt)
                for table in TABLES:
                    st = staged.tables[table.name]
                    temp = staging_table(table)
                    self.stage_into(s, st, temp)
                    for stmt in self.dialect.merge(self.schema, table, temp):
                        s.execute(stmt)
                    result.rows_merged[table.name] = st.rows
                    log.debug("merged %s: %d staged rows", table.name, st.rows)
                checks = integrity_checks(self.dialect, self.schema)
                checks.append(
                    reconciliation_check(self.dialect, self.schema, staging_table(TABLES[-1]), expected_songplays)
                )
                result.checks = run_checks(checks, lambda sql: scalar(s, sql))
                failures = [c for c in result.checks if not c.ok]
                if failures:
                    raise CheckFailed(failures)
                result.rows_total = self.counts(s)
                for table in TABLES:
                    s.execute(f"DROP TABLE IF EXISTS {quote(staging_table(table))}")
                s.commit()
            except BaseException:
                s.rollback()
                raise
        return result

    def check(self) -> list[CheckResult]:
        """The integrity checks alone, against what is committed."""
        with self.session() as s:
            return run_checks(integrity_checks(self.dialect, self.schema), lambda sql: scalar(s, sql))

    def table_counts(self) -> dict[str, int]:
        with self.session() as s:
            return self.counts(s)
