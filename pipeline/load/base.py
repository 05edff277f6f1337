"""What every warehouse does the same way: schema DDL, the transactional load, and the checks.

A destination only says how to open a session and how to get staged Parquet files (or a frame) into a
temporary relation; the SQL around that comes from ``sql.py`` and ``checks.py`` for every target alike.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.checks.base import CheckResult, Target, run_checks
from pipeline.checks.registry import declared
from pipeline.core.errors import CheckFailed, SchemaMissing, SchemaOutdated, TakenOver
from pipeline.core.schema import (
    ALL_TABLES,
    ARTISTS,
    FILE,
    LINE,
    LOADED_FILES,
    LOOKUP_CHANGES,
    RECORDS,
    RUN_FILES,
    RUNS,
    SONGPLAYS,
    SONGS,
    TABLES,
    TIME,
    USER_LEVELS,
    USERS,
    Column,
    Table,
)
from pipeline.core.sql import Dialect, quote, validate_identifier
from pipeline.load.staged import Staged, StagedTable
from pipeline.ops import faults

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


class _Timed:
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


@dataclass
class Fixes:
    """Rows a load writes beyond the staged ones, decided inside the load from what the warehouse holds.

    ``users``/``user_levels`` replace every row of the users in ``user_keys``; ``songplays`` replace the plays
    in ``songplay_keys`` (contested events, derived again from all their records).
    """

    users: pd.DataFrame
    user_keys: pd.DataFrame
    user_levels: pd.DataFrame
    songplays: pd.DataFrame
    songplay_keys: pd.DataFrame
    time: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadResult:
    rows_merged: dict[str, int] = field(default_factory=dict)
    rows_total: dict[str, int] = field(default_factory=dict)
    # Songplays (the whole table, after the run) matched to a song.
    plays_matched: int = 0
    checks: list[CheckResult] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


class Workspace:
    """What reconciliation sees inside the load transaction: the staged relations, queries, and a way to put
    a frame beside them. Everything it reads is as of this transaction; nothing it puts outlives it."""

    def __init__(self, dest: Destination, session: Session, raw: Session, staged: Staged, relations: dict[str, str]):
        self.dest = dest
        self.session = session
        self.raw = raw
        self.staged_at = staged.location
        self.relations = relations
        self.dialect = dest.dialect
        self.schema = dest.schema

    def relation(self, name: str) -> str:
        """The quoted name of a staged relation (``"stg_<name>"``)."""
        return self.relations[name]

    def frame(self, sql: str) -> pd.DataFrame:
        return self.session.frame(sql)

    def put(self, table: Table, frame: pd.DataFrame, name: str) -> str:
        """Make ``frame`` (typed as ``table``) a temporary relation named ``name``; returns its quoted name."""
        self.dest.put_frame(self.raw, table, frame, name, self.staged_at)
        self.relations[name] = quote(name)
        return quote(name)


Reconcile = Callable[[Workspace], Fixes]


def staging_table(name: str) -> str:
    return f"stg_{name}"


class Destination(ABC):
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

    def _t(self, table: Table) -> str:
        return self.dialect.qualified(self.schema, table.name)

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

    def stored_tables(self, session: Session | None = None) -> dict[str, list[str]]:
        """The tables the warehouse holds in our schema (lower-case names), with their columns in order."""
        sql, params = self.dialect.columns_of(self.schema)
        if session is None:
            with self.session() as s:
                rows = s.fetchall(sql, params)
        else:
            rows = session.fetchall(sql, params)
        stored: dict[str, list[str]] = {}
        for table, column in rows:
            stored.setdefault(str(table).lower(), []).append(str(column).lower())
        return stored

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

    def load(self, staged: Staged, reconcile: Reconcile, full_refresh: bool = False) -> LoadResult:
        """Merge the staged relations and the fixes reconciliation decides, check, and commit: one transaction.

        The tables must exist (``create_schema``; a run creates them before it reads the ledger).

        All land, or none: a failure anywhere (a staged file, a check, a dropped connection, the process
        killed) leaves every table and the ledger as they were. With ``full_refresh`` the star tables and the
        kept records are emptied first, inside the same transaction, so the result is a clean build of what
        was staged.
        """
        result = LoadResult()
        with self.session() as raw:
            s = _Timed(raw)
            s.begin()
            try:
                self._still_ours(s, staged.run_id)
                if full_refresh:
                    for table in (*reversed(TABLES), *RECORDS):
                        s.execute(f"DELETE FROM {self._t(table)}")
                rel: dict[str, str] = {}
                for name, st in staged.tables.items():
                    self.stage_into(raw, st, staging_table(name))
                    rel[name] = quote(staging_table(name))
                ws = Workspace(self, s, raw, staged, rel)
                fixes = reconcile(ws)
                result.stats = fixes.stats
                self._merge(s, ws, staged, fixes, result)
                result.checks = self._check(s, ws)
                failures = [c for c in result.checks if not c.ok]
                if failures:
                    raise CheckFailed(failures)
                result.rows_total, result.plays_matched = self.counts(s)
                # The run's outcome commits with its data: a run killed after this commit is never taken for one
                # whose load was rolled back (the run's own end, recorded next, adds its figures).
                p = self.dialect.param
                s.execute(
                    f'UPDATE {self._runs()} SET "status" = {p}, "ended_at" = {p} WHERE "run_id" = {p}',
                    ["succeeded", datetime.now(UTC).replace(tzinfo=None), staged.run_id],
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

    def _status_of(self, s: Session, run_id: str) -> str | None:
        rows = s.fetchall(f'SELECT "status" FROM {self._runs()} WHERE "run_id" = {self.dialect.param}', [run_id])
        return str(rows[0][0]) if rows else None

    def run_status(self, run_id: str) -> str | None:
        """The status the run history holds for ``run_id``, as committed."""
        with self.session() as s:
            return self._status_of(s, run_id)

    def _merge(self, s: Session, ws: Workspace, staged: Staged, fixes: Fixes, result: LoadResult) -> None:
        d, schema, rel = self.dialect, self.schema, ws.relations
        rows = {name: st.rows for name, st in staged.tables.items()}

        def step(name: str) -> None:
            log.debug("merged %s", name)
            faults.checkpoint(f"merged-{name}")

        # The records the star is derived from: a reloaded file's records replace its old ones.
        for table in RECORDS:
            if table.name in rel:
                s.execute(d.delete_keys(schema, table, rel[RUN_FILES.name]))
                s.execute(d.insert(schema, table, rel[table.name]))
                result.rows_merged[table.name] = rows[table.name]
        step("records")
        # The catalogue: rows that changed, and songs or artists no song file holds any more.
        for table in (ARTISTS, SONGS):
            if table.name in rel:
                for keys in (rel[table.name], rel[table.keys_table().name]):
                    s.execute(d.delete_keys(schema, table, keys))
                s.execute(d.insert(schema, table, rel[table.name]))
                result.rows_merged[table.name] = rows[table.name]
            step(table.name)
        # Users and their level history: every row of each user the run touched, as reconciliation decided.
        user_keys = ws.put(USERS.keys_table(), fixes.user_keys, "fix_user_keys")
        for table, frame in ((USERS, fixes.users), (USER_LEVELS, fixes.user_levels)):
            s.execute(d.delete_keys(schema, table, user_keys))
            s.execute(d.insert(schema, table, ws.put(table, frame, f"fix_{table.name}")))
            result.rows_merged[table.name] = len(frame)
            step(table.name)
        # Plays: new ones as staged; contested ones (an event in two files, a reloaded file) as derived again.
        play_keys = ws.put(SONGPLAYS.keys_table(), fixes.songplay_keys, "fix_songplay_keys")
        s.execute(d.start_times_of(schema, play_keys, "gone_times", rel.get(SONGPLAYS.name)))
        s.execute(d.delete_keys(schema, SONGPLAYS, play_keys))
        # Stored plays meet the grown catalogue before this run's plays join them: those were matched with the
        # new lookup already, so on a first load (10M events) this updates nothing instead of every play.
        if LOOKUP_CHANGES.name in rel and rows.get(LOOKUP_CHANGES.name):
            s.execute(d.rematch(schema, rel[LOOKUP_CHANGES.name]))
        if SONGPLAYS.name in rel:
            s.execute(
                d.insert(
                    schema,
                    SONGPLAYS,
                    rel[SONGPLAYS.name],
                    f' WHERE "songplay_id" NOT IN (SELECT "songplay_id" FROM {play_keys})',
                )
            )
        s.execute(d.insert(schema, SONGPLAYS, ws.put(SONGPLAYS, fixes.songplays, "fix_songplays")))
        result.rows_merged[SONGPLAYS.name] = rows.get(SONGPLAYS.name, 0) + len(fixes.songplays)
        step(SONGPLAYS.name)
        # Time follows the plays: a row per start time some play has.
        if TIME.name in rel:
            s.execute(d.insert_missing(schema, TIME, rel[TIME.name]))
        s.execute(d.insert_missing(schema, TIME, ws.put(TIME, fixes.time, "fix_time")))
        s.execute(d.delete_orphan_times(schema, quote("gone_times")))
        result.rows_merged[TIME.name] = rows.get(TIME.name, 0) + len(fixes.time)
        step(TIME.name)
        if LOADED_FILES.name in rel:
            s.execute(d.delete_keys(schema, LOADED_FILES, rel[LOADED_FILES.name]))
            s.execute(d.insert(schema, LOADED_FILES, rel[LOADED_FILES.name]))
            result.rows_merged[LOADED_FILES.name] = rows[LOADED_FILES.name]

    def _check(self, s: Session, ws: Workspace) -> list[CheckResult]:
        return run_checks(declared(Target(self.dialect, self.schema, ws.relations)), partial(one_row, s))

    # ------------------------------------------------------------------ ledger, stored state, run history

    def query(self, sql: str) -> pd.DataFrame:
        """A read-only query as a frame (analytics, notebooks, the report)."""
        with self.session() as s:
            return s.frame(sql)

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.session() as s:
            return s.fetchall(sql, params)

    def loaded_files(self) -> dict[str, tuple[str, int, str]]:
        """url -> (source, size, version) of every file loaded so far."""
        t = self._t(LOADED_FILES)
        return {
            url: (str(source), int(size), str(version))
            for url, source, size, version in self._select(f'SELECT "url", "source", "size", "version" FROM {t}')
        }

    def stored_records(self, table: Table, files: Sequence[str] | None = None, *, located: bool = True) -> pd.DataFrame:
        """Kept source records (``schema.RECORDS``), all of them or those of ``files``, in file and line order.

        ``located=False`` reads every record without its file and line, in no order: for what depends on the
        records' values alone, like a night's song lookup (several times faster, and no URLs to index)."""
        if not located:
            if files is not None:
                raise ValueError("records of some files are read located: their order is file and line")
            fields = [c for c in table.column_names if c not in (FILE.name, LINE.name)]
            return self._records_query(table, "", columns=fields)
        if files is None:
            return self._records_query(table, ' ORDER BY "file", "line"')
        if not files:
            return self._records_query(table, " WHERE 1 = 0")
        marks = ", ".join([self.dialect.param] * len(files))
        return self._records_query(table, f' WHERE "file" IN ({marks}) ORDER BY "file", "line"', list(files))

    def record_counts(self, table: Table, files: Sequence[str]) -> dict[str, int]:
        """Kept records of each of ``files`` (a file with none is absent): what a re-delivery would replace.

        Many files (a full refresh) are counted in one pass over the table rather than through a list of
        thousands of parameters."""
        t = self._t(table)
        if len(files) > 1000:
            rows = self._select(f'SELECT "file", COUNT(*) FROM {t} GROUP BY "file"')
            wanted = set(files)
            return {str(f): int(n) for f, n in rows if f in wanted}
        marks = ", ".join([self.dialect.param] * len(files))
        rows = self._select(f'SELECT "file", COUNT(*) FROM {t} WHERE "file" IN ({marks}) GROUP BY "file"', list(files))
        return {str(f): int(n) for f, n in rows}

    def _records_sql(self, table: Table, rest: str, columns: Sequence[str] | None = None) -> str:
        cols = ", ".join(quote(c) for c in (columns or table.column_names))
        return f"SELECT {cols} FROM {self._t(table)}{rest}"

    def _records_query(
        self, table: Table, rest: str, params: Sequence[Any] = (), columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """``table``'s ``columns`` (all by default) of the rows ``rest`` selects (WHERE and ORDER BY), as a
        frame (a target may type them as the parser does, saving conversions)."""
        import pandas as pd

        with self.session() as s:
            rows = s.fetchall(self._records_sql(table, rest, columns), params)
        return pd.DataFrame([list(r) for r in rows], columns=list(columns or table.column_names))

    def _runs(self) -> str:
        return self._t(RUNS)

    def start_run(self, run_id: str, started_at: datetime) -> int:
        """Mark runs left 'running' by a killed process as abandoned, then record this one.

        Only called while holding the run lock, so no other run can be in progress.
        """
        row = _run_row({"run_id": run_id, "started_at": started_at, "status": "running"})
        p = self.dialect.param
        with self.session() as s:
            s.begin()
            rows = s.fetchall(f"SELECT COUNT(*) FROM {self._runs()} WHERE \"status\" = 'running'")
            abandoned = int(rows[0][0])
            s.execute(f"UPDATE {self._runs()} SET \"status\" = 'abandoned' WHERE \"status\" = 'running'")
            s.execute(
                f"INSERT INTO {self._runs()} ({', '.join(quote(c) for c in row)}) VALUES ({', '.join([p] * len(row))})",
                list(row.values()),
            )
            s.commit()
        return abandoned

    def end_run(self, run_id: str, values: dict[str, Any]) -> None:
        """Record how a run ended: ``values`` by ``_sparkify_runs`` column (text cut to fit its column)."""
        row = _run_row(values)
        p = self.dialect.param
        with self.session() as s:
            s.begin()
            s.execute(
                f'UPDATE {self._runs()} SET {", ".join(f"{quote(c)} = {p}" for c in row)} WHERE "run_id" = {p}',
                [*row.values(), run_id],
            )
            s.commit()

    def run_history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first; none where no run has been recorded (no history table yet)."""
        cols = RUNS.column_names
        with self.session() as s:
            if RUNS.name.lower() not in self.stored_tables(s):
                return []
            rows = s.fetchall(
                f'SELECT {", ".join(quote(c) for c in cols)} FROM {self._runs()} ORDER BY "started_at" DESC '
                f"LIMIT {int(limit)}"
            )
        return [dict(zip(cols, r, strict=True)) for r in rows]

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


def fit(column: Column, value: Any) -> Any:
    """A text value cut to its column's size in UTF-8 bytes (as Redshift counts), never mid-character."""
    if value is None or column.max_bytes is None or not isinstance(value, str):
        return value
    data = value.encode("utf-8")
    if len(data) <= column.max_bytes:
        return value
    return data[: column.max_bytes].decode("utf-8", errors="ignore")


def _run_row(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(RUNS.column_names)
    if unknown:
        raise ValueError(f"{RUNS.name} has no column {sorted(unknown)}")
    return {c: fit(RUNS.column(c), values[c]) for c in RUNS.column_names if c in values}
