"""The embedded default: a DuckDB file, loaded straight from the staged Parquet files."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from pipeline.core.config import Config, DuckDBConfig
from pipeline.core.errors import WarehouseBusy
from pipeline.core.schema import Table
from pipeline.core.sql import DUCKDB, literal, quote
from pipeline.load.base import Destination
from pipeline.load.session import Session
from pipeline.load.staged import StagedTable

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# DuckDB's lock error: 'Conflicting lock is held in /usr/bin/python3.11 (PID 1234) by user ...'.
_HOLDER = re.compile(r"lock is held in (.+?) \(PID (\d+)\)")


def read_copy_of(path: str) -> str:
    """Where the read copy of the warehouse file ``path`` is published: beside it, ``<name>.read.duckdb``."""
    p = Path(path)
    return str(p.with_name(p.stem + ".read" + (p.suffix or ".duckdb")))


class _DuckSession:
    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def frame(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def begin(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        with contextlib.suppress(duckdb.TransactionException):  # nothing was open
            self.con.execute("ROLLBACK")


class DuckDBDestination(Destination):
    dialect = DUCKDB

    def __init__(self, path: str, schema: str, memory_limit: str = DuckDBConfig.memory_limit, read_only: bool = False):
        super().__init__(schema)
        self.path = path
        self.memory_limit = memory_limit
        self.read_only = read_only
        self._pins = 0
        self._pinned: _DuckSession | None = None

    def describe(self) -> str:
        return f"duckdb:{self.path}"

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Every session opened meanwhile is one connection, opened at the first and closed at the end (opening
        one is not free). It holds the file, so a run pins only short stretches:
        its bookkeeping before it reads, and what it reads before the batches (the ledger, the sources' listings,
        the catalogue)."""
        self._pins += 1
        try:
            yield
        finally:
            self._pins -= 1
            if not self._pins and self._pinned is not None:
                con, self._pinned = self._pinned.con, None
                con.close()

    def _connect(self) -> _DuckSession:
        if not self.read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            return _DuckSession(
                duckdb.connect(self.path, read_only=self.read_only, config={"memory_limit": self.memory_limit})
            )
        except duckdb.IOException as exc:
            if "could not set lock" not in str(exc).lower():
                raise
            # One writer process at a time: say who holds it (DuckDB names the program and its PID). Still
            # "could not set lock", so the run's retries wait for it first.
            m = _HOLDER.search(str(exc))
            holder = f"{m.group(1)} (PID {m.group(2)})" if m else "another process"
            raise WarehouseBusy(
                f"could not set lock on {self.path}: it is held by {holder}. Analysts query the read copy "
                f"({self.read_copy}), which never blocks a run; try later"
            ) from None

    @property
    def read_copy(self) -> str:
        return read_copy_of(self.path)

    def exists(self) -> bool:
        return Path(self.path).exists()

    def reader(self, published: bool = True) -> DuckDBDestination:
        """Read-only: the published read copy where there is one (``published``), else the warehouse itself."""
        path = self.read_copy if published and Path(self.read_copy).exists() else self.path
        if published and path == self.path:
            log.warning(
                "no read copy of %s yet (a run publishes one when it succeeds): reading the warehouse itself, which "
                "a run cannot load while this reader has it open",
                self.path,
            )
        return DuckDBDestination(path, self.schema, self.memory_limit, read_only=True)

    def publish(self) -> str:
        """Copy the warehouse to its read copy, atomically: readers of the old copy keep it until they reconnect,
        new ones get the new one, and none of them ever holds the run's file. The copy is taken under a read-only
        connection, so no writer can change the file meanwhile, and is on disk before it is renamed into place."""
        target = Path(self.read_copy)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a run killed while copying
            stale.unlink(missing_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with contextlib.closing(duckdb.connect(self.path, read_only=True)):
                shutil.copyfile(self.path, tmp)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return str(target)

    def unpublish(self) -> None:
        Path(self.read_copy).unlink(missing_ok=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        if not self._pins:
            s = self._connect()
            try:
                yield s
            finally:
                s.con.close()
            return
        if self._pinned is None:
            self._pinned = self._connect()
        try:
            yield self._pinned
        except BaseException:
            # A failed statement may leave a transaction open, or DuckDB's database invalidated (a full disk):
            # the connection goes, and the next session opens a new one, as unpinned sessions always do.
            con, self._pinned = self._pinned.con, None
            with contextlib.suppress(duckdb.Error):
                con.close()
            raise

    def stage_into(self, session: Session, staged: StagedTable, temp_name: str) -> None:
        # A view over the staged files, not a copy: DuckDB scans Parquet in parallel faster than it reads
        # back a temporary table that overflowed memory_limit. Types are cast to the table's.
        if not staged.files:
            session.execute(self.dialect.create_temp_table(staged.table, temp_name))
            return
        cols = ", ".join(
            f"CAST({quote(c.name)} AS {self.dialect.type_name(c)}) AS {quote(c.name)}" for c in staged.table.columns
        )
        files = ", ".join(literal(f) for f in staged.files)
        session.execute(f"CREATE OR REPLACE TEMP VIEW {quote(temp_name)} AS SELECT {cols} FROM read_parquet([{files}])")

    def _records_query(
        self, table: Table, rest: str, params: Sequence[Any] = (), columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        # Through Arrow, typed as the parser types them: no Python strings made and converted after.
        from pipeline.extract.records import pandas_type

        with self.session() as s:
            assert isinstance(s, _DuckSession)
            arrow = s.con.sql(self._records_sql(table, rest, columns), params=list(params)).to_arrow_table()
        frame: pd.DataFrame = arrow.to_pandas(types_mapper=pandas_type)
        return frame

    def put_frame(self, session: Session, table: Table, frame: pd.DataFrame, temp_name: str, location: str) -> None:
        # In-process: DuckDB reads the Arrow table where it lies, no file in between. Through a relation, not
        # ``register``: inside a transaction a registered table is kept alive until the transaction ends.
        assert isinstance(session, _DuckSession)
        from pipeline.load.stage import to_arrow

        relation = session.con.from_arrow(to_arrow(frame, table))
        relation.query(
            "frame_in_place", f'CREATE OR REPLACE TEMPORARY TABLE {quote(temp_name)} AS SELECT * FROM "frame_in_place"'
        )


def from_config(config: Config) -> DuckDBDestination:
    """The embedded warehouse the configuration names (the registry's factory, ``load.DESTINATIONS``)."""
    return DuckDBDestination(
        config.warehouse.duckdb.path, config.warehouse.schema_name, config.warehouse.duckdb.memory_limit
    )
