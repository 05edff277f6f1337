"""The DuckDB destination: one transaction for every table, merges by key, a backfill never wins over newer data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.load.duckdb import DuckDBDestination
from tests.support.helpers import cli, read_tables, run_here, write_config, write_sources
from tests.support.records import event, song

DAY = 86_400_000
TS = 1541105830796


def test_a_failure_after_five_tables_are_merged_leaves_every_table_as_it_was(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_sources(src, [song()], {"2018-11-01-events.json": [event()]})
    config = write_config(tmp_path, src / "song_data", src / "log_data")
    run_here(config)
    before = read_tables(tmp_path / "wh.duckdb")

    write_sources(
        src,
        [song(), song(song_id="SOB", artist_id="ARB", title="Other")],
        {"2018-11-02-events.json": [event(userId="2", itemInSession=1, ts=TS + DAY), event(userId="3", sessionId=7)]},
    )
    # Records, artists, songs, users and user_levels are merged when songplays fails.
    proc = cli("run", "-c", str(config), env={"SPARKIFY_FAULT_FAIL_AT": "merged-songplays"})
    assert proc.returncode == 1 and "injected failure at merged-songplays" in proc.stderr
    after = read_tables(tmp_path / "wh.duckdb")
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    assert run_here(config).rows_total["users"] == 3


def test_a_backfill_of_older_events_keeps_the_newer_level_and_extends_the_history(tmp_path: Path) -> None:
    src = tmp_path / "src"
    config = write_config(tmp_path, src / "song_data", src / "log_data")
    write_sources(src, [], {"2018-11-03-events.json": [event(userId="5", level="paid", ts=TS + 2 * DAY)]})
    run_here(config)
    write_sources(src, [], {"2018-11-01-events.json": [event(userId="5", level="free", ts=TS, sessionId=9)]})
    run_here(config)
    tables = read_tables(tmp_path / "wh.duckdb")
    assert tables["users"][["user_id", "level"]].values.tolist() == [["5", "paid"]]
    levels = tables["user_levels"]
    assert levels["level"].tolist() == ["free", "paid"]
    assert levels["valid_to"].iloc[0] == pd.Timestamp(TS + 2 * DAY, unit="ms") and pd.isna(levels["valid_to"].iloc[1])
    # ...and newer data does replace older.
    write_sources(src, [], {"2018-11-04-events.json": [event(userId="5", level="free", ts=TS + 3 * DAY, sessionId=10)]})
    run_here(config)
    assert read_tables(tmp_path / "wh.duckdb")["users"]["level"].tolist() == ["free"]


def test_the_same_events_in_an_overlapping_file_add_only_new_rows(tmp_path: Path) -> None:
    src = tmp_path / "src"
    config = write_config(tmp_path, src / "song_data", src / "log_data")
    a, b = event(itemInSession=0), event(itemInSession=1, ts=TS + 1000)
    write_sources(src, [song()], {"2018-11-01-events.json": [a]})
    run_here(config)
    write_sources(src, [song()], {"2018-11-01-again-events.json": [a, b]})
    run_here(config)
    tables = read_tables(tmp_path / "wh.duckdb")
    assert tables["songplays"]["songplay_id"].tolist() == ["1:1:0", "1:1:1"]
    assert len(tables["time"]) == 2 and len(tables["users"]) == 1 and len(tables["songs"]) == 1


def test_schema_name_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        DuckDBDestination(str(tmp_path / "wh.duckdb"), 'main"; DROP TABLE users; --')


def test_a_failed_statement_on_the_runs_one_connection_leaves_nothing_open(tmp_path: Path) -> None:
    dest = DuckDBDestination(str(tmp_path / "wh.duckdb"), "main")
    dest.create_schema()
    with dest.pinned():
        with pytest.raises(Exception, match="no_such_table"), dest.session() as first:
            s = first
            s.begin()
            s.execute(
                'INSERT INTO "main"."_sparkify_runs" ("run_id", "started_at", "status") '
                "VALUES ('r1', TIMESTAMP '2026-11-30 00:00:00', 'running')"
            )
            s.execute("SELECT * FROM no_such_table")
        # The next session is a new connection with no transaction left open, and nothing of the failed one;
        # the failed one is closed (a DuckDB error may have left its database unusable).
        with dest.session() as s:
            assert s is not first
            with pytest.raises(Exception, match="closed"):
                first.fetchall("SELECT 1")
            s.begin()
            assert s.fetchall('SELECT COUNT(*) FROM "main"."_sparkify_runs"') == [(0,)]
            s.commit()
    assert dest.run_history() == []


_OPEN_ELSEWHERE = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: what a notebook's connect() asks for
print(con.execute("SELECT COUNT(*) FROM songs").fetchone()[0])
con.close()
"""


def test_another_process_can_open_the_warehouse_while_a_run_transforms(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from pipeline.reconcile import partials

    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    run_here(config)
    songs = len(read_tables(tmp_path / "wh.duckdb")["songs"])
    opened: list[subprocess.CompletedProcess[str]] = []
    add = partials.RunPartials.add

    def add_and_open_elsewhere(self: partials.RunPartials, *args: object) -> None:
        # Between two stretches of the run's own work on the file: a batch being transformed.
        opened.append(
            subprocess.run(
                [sys.executable, "-c", _OPEN_ELSEWHERE, str(tmp_path / "wh.duckdb")], capture_output=True, text=True
            )
        )
        add(self, *args)

    monkeypatch.setattr(partials.RunPartials, "add", add_and_open_elsewhere)
    run_here(config, full_refresh=True)
    assert opened, "no batch was transformed"
    for proc in opened:
        assert proc.returncode == 0, proc.stderr
        assert int(proc.stdout) == songs


def test_a_night_reads_every_kept_song_record_without_its_file_and_line(tmp_path: Path) -> None:
    """What a night that reads no song file derives the lookup from: every kept record's values, in no order."""
    from pipeline.core.schema import SONG_RECORDS

    src = tmp_path / "src"
    # Two records of one song that disagree, and a song without a year.
    catalogue = [song(), song(song_id="SOB", title="Other"), song(song_id="SOB", title="Other", year=0)]
    write_sources(src, catalogue, {"2018-11-01-events.json": [event()]})
    run_here(write_config(tmp_path, src / "song_data", src / "log_data"))
    dest = DuckDBDestination(str(tmp_path / "wh.duckdb"), "main")
    located = dest.stored_records(SONG_RECORDS)
    values = dest.stored_records(SONG_RECORDS, located=False)
    assert list(values.columns) == [c for c in located.columns if c not in ("file", "line")] and len(values) == 3

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values(list(frame.columns)).reset_index(drop=True)

    pd.testing.assert_frame_equal(ordered(values), ordered(located.drop(columns=["file", "line"])))
    with pytest.raises(ValueError, match="located"):
        dest.stored_records(SONG_RECORDS, [str(located["file"].iloc[0])], located=False)
