"""What every warehouse does the same way: schema DDL, the transactional load, and the checks.

A destination only says how to open a session and how to get staged Parquet files (or a frame) into a
temporary relation; the SQL around that comes from ``core/sql.py``, the merge from ``merge.py``, the checks
from ``checks/``, the ledger and run history from ``ledger.py``, for every target alike.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from pipeline.checks.base import CheckResult, Scope, Target, run_checks
from pipeline.checks.registry import declared
from pipeline.core.errors import CheckFailed, SchemaMissing, SchemaOutdated, TakenOver
from pipeline.core.schema import (
    ALL_TABLES,
    AUDITS,
    DERIVED,
    RECORDS,
    SONGPLAYS,
    TABLES,
    Table,
)
from pipeline.core.sql import Dialect, quote, validate_identifier
from pipeline.load.staged import Staged, StagedTable
from pipeline.ops import faults

if TYPE_CHECKING:
    import pandas as pd

from pipeline.load.ledger import Ledger
from pipeline.load.merge import merge_star
from pipeline.load.session import Session, Timed, one_row
from pipeline.load.workspace import LoadResult, Reconcile, Workspace, staging_table

log = logging.getLogger(__name__)


class Destination(Ledger):
    dialect: Dialect

    def __init__(self, schema: str):
        self.schema = validate_identifier(schema, "warehouse.schema")

    # ------------------------------------------------------------------ to implement per target

    @abstractmethod
    @contextmanager
    def session(self) -> Iterator[Session]:
        """An open connection, closed on exit (while ``pinned``, the one connection, closed when the pin ends)."""

    @abstractmethod
    def stage_into(self, session: Session, staged: StagedTable, temp_name: str) -> None:
        """Make ``temp_name`` (a temporary table or view) hold the staged files, typed like ``staged.table``.

        Temporary objects last as long as the session, which ends with the load, so nothing drops them.
        """

    @abstractmethod
    def put_frame(self, session: Session, table: Table, frame: pd.DataFrame, temp_name: str, location: str) -> None:
        """Make ``temp_name`` a temporary relation holding ``frame``, typed like ``table``.

        ``location`` is the run's staging folder, for targets that can only bulk-load from files.
        """

    def describe(self) -> str:
        return self.dialect.name

    def exists(self) -> bool:
        """Whether the warehouse is there at all (a read-only command must not create it)."""
        return True

    def publish(self) -> str | None:
        """After a successful run: make what it loaded readable without blocking the next run (where that takes a
        copy, as with DuckDB's one writer process); where the copy went, or None."""
        return None

    def unpublish(self) -> None:
        """Remove what ``publish`` made (the tables it copied are being dropped); nothing where it made nothing."""
        return None

    def reader(self, published: bool = True) -> Destination:
        """This warehouse for reading only: the published copy where there is one and ``published``."""
        return self

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """While open, a target that can keeps one connection for every session (DuckDB); others open each."""
        yield

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

    def check_schema(self) -> None:
        """Fail, before anything is written, if a stored table's columns differ from ``schema.py``."""
        stored = self.stored_tables()
        problems = []
        for t in ALL_TABLES:
            have = stored.get(t.name.lower())
            if have is not None and have != [c.lower() for c in t.column_names]:
                problems.append(f"{t.name} has ({', '.join(have)}), expected ({', '.join(t.column_names)})")
        if problems:
            raise SchemaOutdated(
                "the warehouse's tables were created by an older version of the pipeline: "
                + "; ".join(problems)
                + ". Rebuild them from the source: `python -m pipeline drop-schema --yes`, then `run`."
            )

    def drop_schema(self, tables: tuple[Table, ...] = ALL_TABLES) -> None:
        """Drop ``tables``: by default every table the pipeline owns (the star, the kept records, the ledger and
        the run history), so the next run rebuilds from the source. Not the schema, which may hold other things."""
        with self.session() as s:
            s.begin()
            for stmt in self.dialect.drop_tables(self.schema, tables):
                s.execute(stmt)
            s.commit()

    def counts(self, session: Session) -> tuple[dict[str, int], int]:
        """Rows in each star table, and plays matched to a song: one statement, not seven."""
        counts = [f"(SELECT COUNT(*) FROM {self._t(t)})" for t in TABLES]
        matched = f'(SELECT COUNT("song_id") FROM {self._t(SONGPLAYS)})'
        *rows, plays = one_row(session, f"SELECT {', '.join([*counts, matched])}")
        return {t.name: int(n) for t, n in zip(TABLES, rows, strict=True)}, int(plays)

    def load(
        self, staged: Staged, reconcile: Reconcile, full_refresh: bool = False, audit_days: float = 0
    ) -> LoadResult:
        """Merge the staged relations and the fixes reconciliation decides, check, and commit: one transaction.

        The checks read what this load wrote (and what refers to keys it removed), unless the audit is due: every
        row of every table, when no load has audited within ``audit_days`` (0: always), and on a full refresh.

        The tables must exist (``create_schema``; a run creates them before it reads the ledger).

        All land, or none: a failure anywhere (a staged file, a check, a dropped connection, the process
        killed) leaves every table and the ledger as they were. With ``full_refresh`` the star tables and the
        kept records are emptied first, inside the same transaction, so the result is a clean build of what
        was staged.
        """
        result = LoadResult()
        with self.session() as raw:
            s = Timed(raw)
            s.begin()
            try:
                self._still_ours(s, staged.run_id)
                if full_refresh:
                    for table in (*reversed(TABLES), *RECORDS, *DERIVED):
                        s.execute(f"DELETE FROM {self._t(table)}")
                rel: dict[str, str] = {}
                for name, st in staged.tables.items():
                    self.stage_into(raw, st, staging_table(name))
                    rel[name] = quote(staging_table(name))
                ws = Workspace(self.put_frame, self.dialect, self.schema, s, raw, staged, rel)
                fixes = reconcile(ws)
                result.stats = fixes.stats
                scope = merge_star(s, ws, staged, fixes, result)
                result.audited = full_refresh or self._audit_due(s, audit_days)
                result.checks = self._check(s, ws, None if result.audited else scope)
                failures = [c for c in result.checks if not c.ok]
                if failures:
                    raise CheckFailed(failures)
                if result.audited:
                    s.execute(
                        f"INSERT INTO {self._t(AUDITS)} ({', '.join(quote(c) for c in AUDITS.column_names)}) "
                        f"VALUES ({', '.join([self.dialect.param] * 3)})",
                        [staged.run_id, _now(), len(result.checks)],
                    )
                result.rows_total, result.plays_matched = self.counts(s)
                # The run's outcome commits with its data: a run killed after this commit is never taken for one
                # whose load was rolled back (the run's own end, recorded next, adds its figures).
                p = self.dialect.param
                s.execute(
                    f'UPDATE {self._runs()} SET "status" = {p}, "ended_at" = {p} WHERE "run_id" = {p}',
                    ["succeeded", _now(), staged.run_id],
                )
                faults.checkpoint("before-commit")
                s.commit()
            except BaseException:
                s.rollback()
                raise
        faults.checkpoint("after-commit")
        return result

    def _still_ours(self, s: Session, run_id: str) -> None:
        """Refuse to load unless this run is still the one in progress: with its lock file removed (``rm -rf
        build/``), a second run may have started and marked this one abandoned; only the later one may load.
        Read in the load's own transaction, so the answer holds until its commit."""
        status = self._status_of(s, run_id)
        if status is None or status == "running":
            return  # (none: a load outside a recorded run, from a notebook or a test of the load alone)
        if status == "succeeded":
            raise RuntimeError(f"run {run_id}'s load has committed already (its acknowledgement was lost)")
        raise TakenOver(
            f"a later run started while this one ({run_id}) was running (was its lock file removed?) and marked "
            f"it {status}: this run loads nothing, so two runs never both load"
        )

    def _audit_due(self, s: Session, audit_days: float) -> bool:
        """Whether this load checks the whole warehouse: no load has, or none within ``audit_days``, less an hour
        so that a nightly cron audits on the seventh night of seven days however long each run took."""
        if audit_days <= 0:
            return True
        (last,) = one_row(s, f'SELECT MAX("audited_at") FROM {self._t(AUDITS)}')
        return last is None or _now() - last >= timedelta(days=audit_days) - AUDIT_SLACK

    def _check(self, s: Session, ws: Workspace, scope: Scope | None) -> list[CheckResult]:
        return run_checks(declared(Target(self.dialect, self.schema, ws.relations, scope)), partial(one_row, s))

    def query(self, sql: str) -> pd.DataFrame:
        """A read-only query as a frame (analytics, notebooks, the report)."""
        with self.session() as s:
            return s.frame(sql)

    def check(self) -> list[CheckResult]:
        """The checks that need no run, against what is committed."""
        with self.session() as s:
            stored = self.stored_tables(s)
            missing = [t.name for t in TABLES if t.name.lower() not in stored]
            if missing:
                raise SchemaMissing(
                    f"{self.describe()} (schema {self.schema}) has no {', '.join(missing)} table: nothing has been "
                    "loaded there yet. Check warehouse.* in the config; `python -m pipeline run` creates and loads "
                    "them."
                )
            return run_checks(declared(Target(self.dialect, self.schema)), partial(one_row, s))


# Runs at a fixed hour start and reach their checks minutes apart from night to night.
AUDIT_SLACK = timedelta(hours=1)


def _now() -> datetime:
    """UTC, without a zone: as every timestamp the warehouse keeps."""
    return datetime.now(UTC).replace(tzinfo=None)
