"""The data-quality checks catch what they claim to, on a real DuckDB warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.checks.reconciliation import reconciliation_check
from pipeline.core.errors import CheckFailed
from pipeline.core.schema import Column, Kind, Table
from pipeline.core.sql import DUCKDB, REDSHIFT, quote
from pipeline.load.duckdb import DuckDBDestination
from tests.support.helpers import cli, read_tables, run_here, run_json, write_config, write_sources
from tests.support.records import event, song


def _loaded(tmp_path: Path) -> DuckDBDestination:
    src = tmp_path / "src"
    write_sources(src, [song()], {"2018-11-01-events.json": [event(), event(itemInSession=1, ts=1541106106797)]})
    run_here(write_config(tmp_path, src / "song_data", src / "log_data"))
    return DuckDBDestination(str(tmp_path / "wh.duckdb"), "main")


def _failed(dest: DuckDBDestination) -> dict[str, int]:
    return {r.check.name: r.actual for r in dest.check() if not r.ok}


def test_a_clean_load_passes_every_check(tmp_path: Path) -> None:
    dest = _loaded(tmp_path)
    results = dest.check()
    assert len(results) >= 15 and _failed(dest) == {}


def test_repeated_and_null_keys_and_orphans_are_reported_with_counts(tmp_path: Path) -> None:
    dest = _loaded(tmp_path)
    with duckdb.connect(dest.path) as con:
        # Three copies of one play (2 repeats); plays of a user and of a song that do not exist. (DuckDB
        # enforces NOT NULL itself, so the null-key checks cannot be tripped here.)
        con.execute("INSERT INTO songplays SELECT * FROM songplays WHERE songplay_id LIKE '%:0'")
        con.execute("INSERT INTO songplays SELECT * FROM songplays WHERE songplay_id LIKE '%:0' LIMIT 1")
        con.execute("UPDATE songplays SET user_id = 'ghost', song_id = 'SOGHOST' WHERE songplay_id LIKE '%:1'")
        # A repeated parent key is its own failure and changes no orphan count (the join matches it twice).
        con.execute("INSERT INTO users SELECT * FROM users")
    assert _failed(dest) == {
        "users.primary_key_unique": 1,
        "songplays.primary_key_unique": 2,
        "songplays.user_id_in_users": 1,
        "songplays.song_id_in_songs": 1,
    }


def _the_one_period(con: duckdb.DuckDBPyConnection) -> tuple[str, str, object, str]:
    """The loaded user's only level period (user, level, start) and the other level."""
    [(user, level, start)] = con.execute("SELECT user_id, level, valid_from FROM user_levels").fetchall()
    return user, level, start, "paid" if level == "free" else "free"


def test_a_level_history_with_overlaps_gaps_or_two_current_periods_is_reported(tmp_path: Path) -> None:
    dest = _loaded(tmp_path)
    with duckdb.connect(dest.path) as con:
        user, level, start, other = _the_one_period(con)
        # A second current period an hour later (so the first neither ends where it starts nor is alone), and
        # a user whose current level is not the one users holds.
        con.execute("INSERT INTO user_levels VALUES (?, ?, ? + INTERVAL 1 HOUR, NULL)", [user, other, start])
        con.execute("UPDATE users SET level = ? WHERE user_id = ?", [other, user])
    assert _failed(dest) == {
        "user_levels.periods_tile": 1,
        "user_levels.one_current_per_user": 1,
        "user_levels.current_is_users_level": 1,  # of the two current periods, the first
    }
    with duckdb.connect(dest.path) as con:
        con.execute("UPDATE user_levels SET valid_to = valid_from + INTERVAL 2 HOUR WHERE level = ?", [level])
        con.execute("UPDATE user_levels SET level = ? WHERE valid_to IS NULL", [level])
    assert _failed(dest) == {
        "user_levels.periods_tile": 1,  # the first period ends after the next one starts
        "user_levels.each_period_changes_level": 1,
        "user_levels.current_is_users_level": 1,
    }


def test_a_gap_between_periods_is_reported(tmp_path: Path) -> None:
    dest = _loaded(tmp_path)
    with duckdb.connect(dest.path) as con:
        user, _, start, other = _the_one_period(con)
        # Closed an hour after it starts, the next period two hours after: a gap of an hour.
        con.execute("UPDATE user_levels SET valid_to = valid_from + INTERVAL 1 HOUR")
        con.execute("INSERT INTO user_levels VALUES (?, ?, ? + INTERVAL 2 HOUR, NULL)", [user, other, start])
        con.execute("UPDATE users SET level = ?", [other])
    assert _failed(dest) == {"user_levels.periods_tile": 1}


def _age_the_audit(db: Path | str, days: int) -> None:
    """As if the last audit had been ``days`` earlier."""
    with duckdb.connect(str(db)) as con:
        con.execute(f"UPDATE _sparkify_audits SET audited_at = audited_at - INTERVAL {days} DAY")


def test_a_failed_check_rolls_the_load_back(tmp_path: Path) -> None:
    dest = _loaded(tmp_path)
    with duckdb.connect(dest.path) as con:
        con.execute("DELETE FROM users")  # every stored play is now an orphan
    _age_the_audit(dest.path, 8)  # the audit is due (run.audit_days is 7): this load checks every row
    write_sources(tmp_path / "src", [song()], {"2018-11-02-events.json": [event(userId="999", sessionId=99)]})
    with pytest.raises(CheckFailed, match=r"songplays\.user_id_in_users"):
        run_here(tmp_path / "config.yaml")
    with duckdb.connect(dest.path) as con:
        assert con.execute("SELECT COUNT(*) FROM songplays").fetchone() == (2,)
        assert con.execute("SELECT COUNT(*) FROM users").fetchone() == (0,)


def test_a_warehouse_broken_behind_the_pipelines_back_is_caught_by_the_audit_within_audit_days(
    tmp_path: Path,
) -> None:
    """A night checks the rows it writes, so one user's row deleted by hand is not its to see; `run --audit`
    sees it at once, and so does the first night after run.audit_days, and neither loads anything."""
    src = tmp_path / "src"
    write_sources(src, [song()], {"2018-11-01-events.json": [event(userId="1"), event(userId="2", sessionId=2)]})
    config = write_config(tmp_path, src / "song_data", src / "log_data")
    assert run_json(config)["checks"] == "audit", "a first load audits: no load has"
    db = tmp_path / "wh.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM users WHERE user_id = '1'")
    write_sources(src, [], {"2018-11-02-events.json": [event(userId="3", sessionId=3, ts=1541192230796)]})
    night = run_json(config)
    assert night["checks"] == "night" and night["rows_merged"]["songplays"] == 1, "the night is about user 3 only"
    before = read_tables(db)
    write_sources(src, [], {"2018-11-03-events.json": [event(userId="4", sessionId=4, ts=1541278630796)]})
    for attempt in (["--audit"], []):
        if not attempt:
            _age_the_audit(db, 8)
        failed = cli("run", *attempt, "-c", str(config))
        assert failed.returncode == 3, failed.stderr
        assert "FAILED songplays.user_id_in_users" in failed.stderr and "rolled back" in failed.stderr
        after = read_tables(db)
        for name, frame in before.items():
            pd.testing.assert_frame_equal(after[name], frame, obj=name)
    assert cli("check", "-c", str(config)).returncode != 0, "`check` audits every row too"


def test_a_night_whose_own_rows_break_a_key_is_stopped_by_its_confined_checks(tmp_path: Path) -> None:
    """Confined to what it writes, a night still sees a key it breaks: a play already there under the id it
    writes, or a song it matches that was deleted by hand."""
    src = tmp_path / "src"
    write_sources(src, [song()], {"2018-11-01-events.json": [event(userId="1")]})
    config = write_config(tmp_path, src / "song_data", src / "log_data")
    run_json(config)
    db = tmp_path / "wh.duckdb"
    before = read_tables(db)
    tonight = event(userId="3", sessionId=3, ts=1541192230796)
    write_sources(src, [], {"2018-11-02-events.json": [tonight]})
    with duckdb.connect(str(db)) as con:  # the id the night writes, already taken
        con.execute("INSERT INTO songplays SELECT * REPLACE ('3:3:0' AS songplay_id, 3 AS session_id) FROM songplays")
    failed = cli("run", "-c", str(config))
    assert failed.returncode == 3 and "FAILED songplays.primary_key_unique" in failed.stderr, failed.stderr
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM songplays WHERE songplay_id = '3:3:0'")
        con.execute("DELETE FROM songs")  # the song tonight's play matches
    failed = cli("run", "-c", str(config))
    assert failed.returncode == 3 and "FAILED songplays.song_id_in_songs" in failed.stderr, failed.stderr
    assert read_tables(db)["songplays"].equals(before["songplays"])


@pytest.mark.parametrize("keys", [("a",), ("a", "b")])
def test_repeated_keys_counts_rows_beyond_the_first_per_key(keys: tuple[str, ...]) -> None:
    table = Table("t", (Column("a", Kind.TEXT), Column("b", Kind.INT)), primary_key=keys)
    rows = [("x", 1), ("x", 1), ("x", 1), ("x", 2), ("y", 1), ("y", 2), (None, 1), (None, 1)]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a VARCHAR, b INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", rows)
    # On a: x repeats 3 times, y once. On (a, b): only (x, 1), twice. Null keys are the not-null check's.
    expected = 4 if keys == ("a",) else 2
    assert con.execute(DUCKDB.repeated_keys(table, quote("t"))).fetchone() == (expected,)
    assert REDSHIFT.repeated_keys(table, quote("t")) == DUCKDB.repeated_keys(table, quote("t"))


def test_a_play_of_this_run_missing_from_the_warehouse_is_reported() -> None:
    con = duckdb.connect()
    for name in ("songplays", "staged", "contested", "derived"):
        con.execute(f"CREATE TABLE {name} (songplay_id VARCHAR, session_id BIGINT)")
    # Staged a, b, c; c was contested and derived again.
    con.execute("INSERT INTO staged VALUES ('a', 1), ('b', 1), ('c', 2)")
    con.execute("INSERT INTO contested VALUES ('c', 2)")
    con.execute("INSERT INTO derived VALUES ('c', 2)")
    check = reconciliation_check(DUCKDB, "main", "staged", "derived", "contested")
    session = {"a": 1, "b": 1, "c": 2}

    def missing(stored: list[str]) -> int:
        con.execute("DELETE FROM songplays")
        for key in stored:
            con.execute("INSERT INTO songplays VALUES (?, ?)", [key, session[key]])
        [(n,)] = con.execute(check.sql).fetchall()
        return int(n)

    assert missing(["a", "b", "c"]) == 0
    assert missing(["a", "b"]) == 1  # the derived play
    assert missing(["b", "c"]) == 1  # a staged play
    assert missing(["a", "c", "c"]) == 1  # a repeated row does not stand in for the missing one
    assert missing([]) == 3


def test_a_check_added_to_the_registry_is_run_by_check_and_by_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One declaration in ``CHECKS`` is all a new check takes: ``check`` reports it and a load fails on it."""
    from pipeline.checks import registry
    from pipeline.checks.base import Check, Target

    dest = _loaded(tmp_path)

    def long_sessions(target: Target) -> list[Check]:
        plays = target.dialect.qualified(target.schema, "songplays")
        return [Check("songplays.session_not_99", f'SELECT COUNT(*) FROM {plays} WHERE "session_id" = 99', 0, "x")]

    monkeypatch.setattr(registry, "CHECKS", [*registry.CHECKS, long_sessions])
    assert _failed(dest) == {}
    write_sources(tmp_path / "src", [song()], {"2018-11-02-events.json": [event(userId="2", sessionId=99)]})
    with pytest.raises(CheckFailed, match=r"songplays\.session_not_99"):
        run_here(tmp_path / "config.yaml")
    with duckdb.connect(dest.path) as con:
        assert con.execute("SELECT COUNT(*) FROM songplays").fetchone() == (2,), "rolled back"
        con.execute("UPDATE songplays SET session_id = 99")
    assert _failed(dest) == {"songplays.session_not_99": 2}


def test_a_stale_song_lookup_is_found_by_the_audit_and_by_check(tmp_path: Path) -> None:
    dest = _loaded(tmp_path)
    with duckdb.connect(dest.path) as con:
        assert con.execute("SELECT COUNT(*) FROM _sparkify_song_lookup").fetchone() == (1,)
        con.execute("UPDATE _sparkify_song_lookup SET song_length = song_length + 1")  # as an older version left it
    assert _failed(dest) == {"_sparkify_song_lookup.names_songs": 1}


def test_the_audit_is_due_a_week_after_the_last_less_an_hour(tmp_path: Path) -> None:
    """A nightly cron audits on the seventh night even when that night reaches its checks a little earlier in the
    day than the audit a week before did; not on the sixth."""
    dest = _loaded(tmp_path)

    def due_after(age: str) -> bool:
        with duckdb.connect(dest.path) as con:
            con.execute(f"UPDATE _sparkify_audits SET audited_at = now()::TIMESTAMP - INTERVAL '{age}'")
        with dest.session() as s:
            return dest._audit_due(s, 7)

    assert not due_after("6 days 20 hours")
    assert due_after("6 days 23 hours 50 minutes")
    assert due_after("8 days")
    with dest.session() as s:
        assert dest._audit_due(s, 0), "0 audits every load"


@pytest.mark.parametrize("written_again", [False, True])
def test_a_night_that_removes_a_key_finds_the_rows_still_referring_to_it(written_again: bool) -> None:
    """Confined to a night, the foreign-key checks still read the stored rows that refer to a key it deleted and did
    not write again: a song removed, a user dropped, a time no play has."""
    from pipeline.checks.base import Scope, Target, Written
    from pipeline.checks.integrity import integrity_checks
    from pipeline.core.schema import SONGS, TABLES

    con = duckdb.connect()
    for table in TABLES:
        con.execute(DUCKDB.create_table("main", table))
    con.execute("INSERT INTO users (user_id, level) VALUES ('1', 'free')")
    con.execute("INSERT INTO time VALUES ('2018-11-01 10:00:00', 10, 1, 44, 11, 2018, 4)")
    con.execute("INSERT INTO artists (artist_id) VALUES ('AR1')")
    con.execute("INSERT INTO songs (song_id, artist_id) VALUES ('SO1', 'AR1')")
    con.execute(
        "INSERT INTO songplays (songplay_id, start_time, user_id, song_id, artist_id, session_id) "
        "VALUES ('1:1:0', '2018-11-01 10:00:00', '1', 'SO1', 'AR1', 1)"
    )
    con.execute("CREATE TEMP TABLE gone_songs AS SELECT 'SO1' AS song_id")
    con.execute("CREATE TEMP TABLE new_songs AS SELECT * FROM songs WHERE song_id = 'SO1'")
    if not written_again:
        con.execute("DELETE FROM songs")  # the night removed the song, which a stored play still names
    scope = Scope(
        written={"songs": [Written("new_songs", tuple(SONGS.column_names))]} if written_again else {},
        deleted={"songs": ["gone_songs"]},
    )
    checks = {c.name: c for c in integrity_checks(Target(DUCKDB, "main", scope=scope))}
    assert "songplays.primary_key_unique" not in checks, "the night wrote no play: nothing of songplays to check"
    [(orphans,)] = con.execute(checks["songplays.song_id_in_songs"].sql).fetchall()
    assert orphans == (0 if written_again else 1)
