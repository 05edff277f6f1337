"""The ledger of loaded files, the kept records read back, and the run history: the bookkeeping every
destination shares, on top of the session each one opens."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.core.schema import (
    FILE,
    LINE,
    LOADED_FILES,
    RUNS,
    SONG_LOOKUP,
    SONG_RECORDS,
    Column,
    Table,
)
from pipeline.core.sql import Dialect, quote

if TYPE_CHECKING:
    import pandas as pd

from pipeline.load.session import Session


class Ledger(ABC):
    """What a destination knows of earlier runs. Subclasses open the session."""

    dialect: Dialect
    schema: str

    @abstractmethod
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A connection to the warehouse, closed afterwards."""

    def _t(self, table: Table) -> str:
        return self.dialect.qualified(self.schema, table.name)

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

    def _status_of(self, s: Session, run_id: str) -> str | None:
        rows = s.fetchall(f'SELECT "status" FROM {self._runs()} WHERE "run_id" = {self.dialect.param}', [run_id])
        return str(rows[0][0]) if rows else None

    def run_status(self, run_id: str) -> str | None:
        """The status the run history holds for ``run_id``, as committed."""
        with self.session() as s:
            return self._status_of(s, run_id)

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

    def lookup_built(self) -> bool:
        """Whether ``schema.SONG_LOOKUP`` holds the lookup: not in a warehouse from before it was kept, which holds
        song records and no lookup (one whose songs all lack a title, an artist or a length reads as not built
        either, and has its lookup derived from the records every night, as before)."""
        lookup, records = self._t(SONG_LOOKUP), self._t(SONG_RECORDS)
        (n,) = self._select(
            f"SELECT (SELECT COUNT(*) FROM (SELECT 1 AS x FROM {lookup} LIMIT 1) l) "
            f"+ 1 - (SELECT COUNT(*) FROM (SELECT 1 AS x FROM {records} LIMIT 1) r)"
        )[0]
        return int(n) > 0

    def stored_lookup(self) -> pd.DataFrame:
        """The lookup the last load left (``schema.SONG_LOOKUP``)."""
        return self._records_query(SONG_LOOKUP, "")

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
