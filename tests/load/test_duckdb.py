"""The DuckDB destination: one transaction for all five tables, merges by key, version-aware users."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline import stage as staging
from pipeline.load.duckdb import DuckDBDestination
from pipeline.transform import Star, build_star

from ..conftest import event, events_frame, song, songs_frame
from ..helpers import read_tables

DAY = 86_400_000


def _star(*events: dict, songs: tuple[dict, ...] = (song(),)) -> Star:
    return build_star(songs_frame(*songs), events_frame(*events))


def _load(dest: DuckDBDestination, star: Star, tmp: Path, run_id: str) -> None:
    dest.create_schema()
    staged = staging.stage(star.frames(), str(tmp / "staging"), run_id)
    dest.load(staged)


def test_failure_in_the_fourth_table_leaves_all_five_as_they_were(tmp_path: Path) -> None:
    dest = DuckDBDestination(str(tmp_path / "wh.duckdb"), "main")
    _load(dest, _star(event()), tmp_path, "r1")
    before = read_tables(tmp_path / "wh.duckdb")

    star = _star(event(userId="2", itemInSession=1, ts=1541105830796 + DAY), event(userId="3", itemInSession=2))
    staged = staging.stage(star.frames(), str(tmp_path / "staging"), "r2")
    # time is the fourth table loaded: users, artists and songs have been merged by then.
    Path(staged.tables["time"].files[0]).write_bytes(b"not parquet")
    with pytest.raises(Exception, match=r"parquet|Parquet"):
        dest.load(staged)

    after = read_tables(tmp_path / "wh.duckdb")
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)


def test_a_backfill_of_older_events_keeps_the_newer_level(tmp_path: Path) -> None:
    dest = DuckDBDestination(str(tmp_path / "wh.duckdb"), "main")
    _load(dest, _star(event(userId="5", level="paid", ts=1541105830796 + 2 * DAY)), tmp_path, "new")
    _load(dest, _star(event(userId="5", level="free", ts=1541105830796, sessionId=9)), tmp_path, "old")
    users = read_tables(tmp_path / "wh.duckdb")["users"]
    assert users[["user_id", "level"]].values.tolist() == [["5", "paid"]]
    # ...and newer data does replace older.
    _load(
        dest,
        _star(event(userId="5", level="free", ts=1541105830796 + 3 * DAY, sessionId=10)),
        tmp_path,
        "newer",
    )
    assert read_tables(tmp_path / "wh.duckdb")["users"]["level"].tolist() == ["free"]


def test_reloading_overlapping_data_adds_only_new_rows(tmp_path: Path) -> None:
    dest = DuckDBDestination(str(tmp_path / "wh.duckdb"), "main")
    a, b = event(itemInSession=0), event(itemInSession=1, ts=1541105830796 + 1000)
    _load(dest, _star(a), tmp_path, "r1")
    _load(dest, _star(a, b), tmp_path, "r2")
    tables = read_tables(tmp_path / "wh.duckdb")
    assert tables["songplays"]["songplay_id"].tolist() == ["1:1:0", "1:1:1"]
    assert len(tables["time"]) == 2 and len(tables["users"]) == 1 and len(tables["songs"]) == 1


def test_schema_name_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        DuckDBDestination(str(tmp_path / "wh.duckdb"), 'main"; DROP TABLE users; --')
