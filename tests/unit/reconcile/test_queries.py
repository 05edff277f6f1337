"""The SQL reconciliation reads with, run on DuckDB over small stored and staged record tables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd
import pytest

from pipeline.core.schema import EVENT_RECORDS, REDERIVE, USERS
from pipeline.core.sql import DUCKDB
from pipeline.extract.sources import LOG_SOURCE
from pipeline.reconcile import queries
from pipeline.transform.frames import to_records
from tests.support.records import event, events_frame

T0 = 1_541_105_830_796
STAGED, RUN = '"staged"', '"run_files"'


def _records(file: str, *records: dict[str, Any]) -> pd.DataFrame:
    return to_records(events_frame(*records), LOG_SOURCE, [file])


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as c:
        c.execute(DUCKDB.create_table("main", EVENT_RECORDS))
        yield c


def _tables(con: duckdb.DuckDBPyConnection, stored: pd.DataFrame, staged: pd.DataFrame, run_files: list[str]) -> None:
    con.register("stored_frame", stored)
    con.execute(f"INSERT INTO main.{EVENT_RECORDS.name} SELECT * FROM stored_frame")
    con.register("staged_frame", staged)
    con.execute(f"CREATE TEMP TABLE {STAGED} AS SELECT * FROM staged_frame")
    con.register("run_frame", pd.DataFrame({"file": run_files}))
    con.execute(f"CREATE TEMP TABLE {RUN} AS SELECT * FROM run_frame")


def _keys(con: duckdb.DuckDBPyConnection, sql: str) -> set[tuple[Any, ...]]:
    return set(con.execute(sql).fetchall())


def test_contested_events_are_those_reloaded_met_from_another_file_or_staged_twice(
    con: duckdb.DuckDBPyConnection,
) -> None:
    stored = pd.concat(
        [
            _records("day1", event(userId="1", itemInSession=0), event(userId="", itemInSession=9)),
            _records("day2", event(userId="2", itemInSession=0)),
        ]
    )
    staged = pd.concat(
        [
            _records("day1", event(userId="1", itemInSession=0, level="paid")),  # day1 re-delivered
            _records("day3", event(userId="2", itemInSession=0)),  # also in stored day2
            _records("day3", event(userId="3", itemInSession=0), event(userId="3", itemInSession=0)),  # twice
            _records("day3", event(userId="4", itemInSession=0)),  # new, once: not contested
        ]
    )
    _tables(con, stored, staged, ["day1", "day3"])
    sql = queries.contested_events(DUCKDB, "main", STAGED, RUN)
    assert _keys(con, sql) == {("1", 1, 0), ("2", 1, 0), ("3", 1, 0)}, "a logged-out event ('') is never contested"


def test_a_window_gives_its_records_and_those_at_the_first_millisecond_after_it(
    con: duckdb.DuckDBPyConnection,
) -> None:
    stored = _records("day1", *(event(userId="1", itemInSession=i, ts=T0 + 10 * i) for i in range(5)))
    staged = _records("day2", event(userId="1", itemInSession=5, ts=T0 + 25), event(userId="2", ts=T0 + 10))
    _tables(con, stored, staged, ["day2"])
    window = pd.DataFrame({"user_id": ["1"], "from_ts": [T0 + 10], "to_ts": [T0 + 20], "until_ts": [T0 + 100]})
    con.register("w", window.astype({"from_ts": "int64", "to_ts": "int64", "until_ts": "int64"}))
    con.execute(f'CREATE TEMP TABLE "{REDERIVE.name}" AS SELECT * FROM w')
    rows = con.execute(queries.records_in_windows(DUCKDB, "main", STAGED, RUN, f'"{REDERIVE.name}"')).df()
    assert sorted(rows["ts"] - T0) == [10, 20, 25], "in the window, then the first record after it (staged)"
    counts = con.execute(queries.record_counts(DUCKDB, "main", STAGED, RUN, f'"{REDERIVE.name}"')).fetchall()
    assert counts == [("1", T0 + 10, 2)], "the count sizes chunks: the window's own records"


def test_users_holding_an_event_of_their_windows_in_two_current_records_are_named(
    con: duckdb.DuckDBPyConnection,
) -> None:
    stored = pd.concat(
        [
            _records("day1", event(userId="1", ts=T0)),
            _records("day2", event(userId="2", ts=T0)),
            # User 3 holds an event twice, long before the window: nothing the window gives depends on it.
            _records("day0", event(userId="3", itemInSession=1, ts=T0 - 10_000)),
            _records("day1", event(userId="3", itemInSession=1, ts=T0 - 10_000), event(userId="3", ts=T0)),
            # User 4's event in the window has a second record, with another time, outside it.
            _records("day0", event(userId="4", itemInSession=2, ts=T0 - 10_000)),
            _records("day1", event(userId="4", itemInSession=2, ts=T0)),
        ]
    )
    staged = pd.concat([_records("day3", event(userId="1", ts=T0)), _records("day2", event(userId="2", ts=T0))])
    _tables(con, stored, staged, ["day2", "day3"])  # day2 is re-delivered: its stored record is replaced
    windows = pd.DataFrame(
        {"user_id": ["1", "2", "3", "4"], "from_ts": T0 - 5, "to_ts": T0 + 5, "until_ts": T0 + 5}
    ).astype({"from_ts": "int64", "to_ts": "int64", "until_ts": "int64"})
    con.register("w", windows)
    con.execute(f'CREATE TEMP TABLE "{REDERIVE.name}" AS SELECT * FROM w')
    got = _keys(con, queries.users_with_duplicates(DUCKDB, "main", STAGED, RUN, f'"{REDERIVE.name}"'))
    assert got == {("1",), ("4",)}


def test_rows_for_keys_reads_the_stored_rows_of_the_given_users() -> None:
    sql = queries.rows_for_keys(DUCKDB, "main", USERS, '"touched"')
    with duckdb.connect() as c:
        c.execute(DUCKDB.create_table("main", USERS))
        c.register("rows", pd.DataFrame({"user_id": ["1", "2"], "first_name": ["Ann", "Bo"]}))
        c.execute('INSERT INTO main.users (user_id, first_name) SELECT * FROM "rows"')
        c.execute("""CREATE TEMP TABLE "touched" AS SELECT '2' AS user_id""")
        got = c.execute(sql).df()
    assert got["first_name"].tolist() == ["Bo"] and list(got.columns) == USERS.column_names
