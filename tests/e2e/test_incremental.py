"""Cron-grade runs on the embedded target: incremental loads, windows, full refresh, the lock, kills."""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.support.helpers import assert_same_tables, cli, log_days, read_tables, run_json, write_config

LEDGER = "_sparkify_loaded_files"


def _arrive(files: list[Path], src_root: Path, dst_root: Path) -> None:
    for p in files:
        dst = dst_root / p.relative_to(src_root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst)


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
def test_days_arriving_in_any_order_equal_one_clean_run(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame], workers: int
) -> None:
    logs = tmp_path / "log_data"
    # With workers, batches of about two days each, so every night's batches run side by side.
    batch = {"batch_mb": 0.25} if workers > 1 else {}
    config = write_config(tmp_path, sample_dir / "song_data", logs, run={"workers": workers}, source=batch)
    days = log_days(sample_dir)
    # The last ten days first, then a backfill of the first ten, then the middle: users' levels must end
    # as in a single run even though older events arrive after newer ones.
    for batch in (days[20:], days[:10], days[10:20]):
        _arrive(batch, sample_dir / "log_data", logs)
        summary = run_json(config)
        assert summary["files_read"]["log_data"] == len(batch)
        assert summary["files_skipped"]["log_data"] == len(list(logs.rglob("*.json"))) - len(batch)
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)

    nothing_new = run_json(config)
    assert nothing_new["files_read"] == {"song_data": 0, "log_data": 0}
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_songs_loaded_on_an_earlier_night_still_match_new_plays(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    logs = tmp_path / "log_data"
    config = write_config(tmp_path, sample_dir / "song_data", logs)
    logs.mkdir()
    run_json(config)  # songs only: the log folder is still empty
    _arrive(log_days(sample_dir), sample_dir / "log_data", logs)
    summary = run_json(config)
    assert summary["files_read"]["song_data"] == 0
    tables = read_tables(tmp_path / "wh.duckdb")
    assert tables["songplays"]["song_id"].notna().sum() == 1
    assert_same_tables(tables, clean)


def _lookups(db: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lookup the warehouse keeps, and the one its song records give, both sorted by key."""
    from pipeline.core.schema import SONG_RECORDS
    from pipeline.extract.sources import SONG_SOURCE
    from pipeline.load.duckdb import DuckDBDestination
    from pipeline.transform import catalogue, frames

    dest = DuckDBDestination(str(db), "main", read_only=True)
    kept = catalogue.typed_lookup(dest.stored_lookup())
    derived = catalogue.song_lookup(frames.records_frame(dest.stored_records(SONG_RECORDS), SONG_SOURCE)[0])
    key = ["song_title", "artist_name", "song_length"]
    return (kept.sort_values(key).reset_index(drop=True), derived.sort_values(key).reset_index(drop=True))


def test_the_lookup_kept_in_the_warehouse_is_the_one_the_song_records_give(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    """A night that reads no song file matches its plays with the lookup the last load kept; a warehouse from
    before it was kept derives it once from the song records and keeps it from then on."""
    logs = tmp_path / "log_data"
    config = write_config(tmp_path, sample_dir / "song_data", logs)
    logs.mkdir()
    db = tmp_path / "wh.duckdb"
    run_json(config)  # songs only
    kept, derived = _lookups(db)
    assert len(kept) > 0
    pd.testing.assert_frame_equal(kept, derived)
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE _sparkify_song_lookup")  # as a warehouse from before the lookup was kept
    days = log_days(sample_dir)
    for night in (days[:10], days[10:]):  # the first derives and keeps it; the second reads it
        _arrive(night, sample_dir / "log_data", logs)
        assert run_json(config)["files_read"]["song_data"] == 0
        pd.testing.assert_frame_equal(*_lookups(db))
    assert_same_tables(read_tables(db), clean)


def test_a_changed_file_is_reloaded(sample_copy: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    run_json(config)
    victim = log_days(sample_copy)[0]
    events = [json.loads(x) for x in victim.read_text().splitlines()]
    play = next(e for e in events if e["page"] == "NextSong" and e["userId"])
    play["userAgent"] = "Changed/1.0"
    victim.write_text("\n".join(json.dumps(e) for e in events))
    summary = run_json(config)
    assert summary["files_read"] == {"song_data": 0, "log_data": 1}
    sp = read_tables(tmp_path / "wh.duckdb")["songplays"].set_index("songplay_id")
    assert sp.loc[f"{play['userId']}:{play['sessionId']}:{play['itemInSession']}", "user_agent"] == "Changed/1.0"


def test_full_refresh_rebuilds_and_window_restricts(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    window = run_json_args(config, "--since", "2018-11-05", "--until", "2018-11-06")
    assert window["files_read"]["log_data"] == 2
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    days = {r[0] for r in con.execute("SELECT DISTINCT CAST(start_time AS DATE) FROM songplays").fetchall()}
    con.close()
    assert {str(d) for d in days} <= {"2018-11-05", "2018-11-06"}

    full = run_json_args(config, "--full-refresh")
    assert full["mode"] == "full refresh" and full["files_read"] == {"song_data": 71, "log_data": 30}
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_full_refresh_keeps_the_rows_of_files_that_left_the_source(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    src = tmp_path / "src"
    shutil.copytree(sample_dir, src)
    config = write_config(tmp_path, src / "song_data", src / "log_data")
    run_json(config)
    # Object stores expire old files: a song file and three days of logs leave the source.
    sorted((src / "song_data").rglob("*.json"))[0].unlink()
    for day in log_days(src)[:3]:
        day.unlink()
    assert run_json(config)["files_read"] == {"song_data": 0, "log_data": 0}
    full = run_json_args(config, "--full-refresh")
    assert full["files_read"] == {"song_data": 70, "log_data": 27}
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_full_refresh_cannot_be_windowed(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    lock = tmp_path / "run.lock"
    config.write_text(config.read_text() + f"run:\n  lock_path: {lock}\n")
    with open(lock, "w") as fh:
        # Told what is wrong with the command even while another run holds the lock (not "try again later").
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = cli("run", "-c", str(config), "--full-refresh", "--since", "2018-11-05")
    assert proc.returncode == 2
    assert "--full-refresh rebuilds every table from every file" in proc.stderr
    assert not (tmp_path / "wh.duckdb").exists(), "refused before touching anything"


def run_json_args(config: Path, *args: str) -> dict:
    proc = cli("run", "--json", "-q", "-c", str(config), *args)
    assert proc.returncode == 0, proc.stderr
    result: dict = json.loads(proc.stdout)
    return result


def test_second_invocation_exits_at_once_naming_the_running_one(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    lock = tmp_path / "run.lock"
    config.write_text(config.read_text() + f"run:\n  lock_path: {lock}\n")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write(
            json.dumps(
                {
                    "run_id": "20261125T000000Z-abcdef",
                    "pid": 4242,
                    "host": "cron-host",
                    "started": "2026-11-25T00:00:00+00:00",
                }
            )
        )
        fh.flush()
        proc = cli("run", "-c", str(config))
    assert proc.returncode == 75
    assert "run 20261125T000000Z-abcdef (pid 4242 on cron-host" in proc.stderr
    assert not (tmp_path / "wh.duckdb").exists(), "the second run touched nothing"
    # The holder is gone (its flock with it), the file's stale content remains: the next run proceeds.
    assert cli("run", "-q", "-c", str(config)).returncode == 0


KILL_POINTS = [
    "extracted",
    "staged",
    "merged-records",
    "merged-users",
    "merged-songplays",
    "merged-time",
    "before-commit",
    "after-commit",
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_run_leaves_warehouse_as_before_and_next_run_completes(
    point: str, sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    logs = tmp_path / "log_data"
    config = write_config(tmp_path, sample_dir / "song_data", logs)
    days = log_days(sample_dir)
    _arrive(days[:10], sample_dir / "log_data", logs)
    run_json(config)
    before = read_tables(tmp_path / "wh.duckdb")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    ledger_before = con.execute(f"SELECT url FROM {LEDGER} ORDER BY url").fetchall()
    con.close()

    _arrive(days[10:], sample_dir / "log_data", logs)
    killed = cli("run", "-c", str(config), env={"SPARKIFY_FAULT_KILL_AT": point})
    assert killed.returncode == -9, killed.stderr

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    ledger_after = con.execute(f"SELECT url FROM {LEDGER} ORDER BY url").fetchall()
    con.close()
    if point == "after-commit":
        assert len(ledger_after) == 101  # the commit had happened: data and ledger moved together
    else:
        assert ledger_after == ledger_before
        assert_same_tables(read_tables(tmp_path / "wh.duckdb"), before)

    summary = run_json(config)
    assert summary["status"] == "succeeded"
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)
    runs = json.loads(cli("runs", "--json", "-c", str(config)).stdout)
    # Killed after its commit, a run's load is in: the history says so, never "abandoned" (rolled back).
    killed_status = "succeeded" if point == "after-commit" else "abandoned"
    assert [r["status"] for r in runs] == ["succeeded", killed_status, "succeeded"]


def test_run_history_records_failures(sample_copy: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    log_days(sample_copy)[0].write_bytes(b"{not json" * 20_000)  # one line of 180 KB: over the default 1%
    assert cli("run", "-c", str(config)).returncode == 4
    [r] = json.loads(cli("runs", "--json", "-c", str(config)).stdout)
    assert r["status"] == "failed" and "TooManyRejects" in r["error"] and r["records_rejected"] == 1
