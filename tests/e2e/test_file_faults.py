"""File faults on a loaded warehouse: no night loses what earlier nights loaded, and none does so silently.

Each test loads the real sample, then meets one fault on a later night: a re-delivery that cannot be read, a
full refresh with a file unreadable, a re-delivery cut short or empty, a file gone between listing and reading,
and the two ends of the rejects threshold (one huge record, a day lost whole).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from tests.support.helpers import (
    CAN_DROP_READS,
    assert_same_tables,
    cli,
    cli_bound_by_file_modes,
    read_tables,
    summary_of,
    write_config,
)

needs_file_modes = pytest.mark.skipif(not CAN_DROP_READS, reason="needs setpriv to drop root's reads")


def _touch(path: Path) -> None:
    """A re-delivery of the same bytes: a newer modification time, so the ledger sees a new version."""
    later = time.time() + 5
    os.utime(path, (later, later))


def _redeliver_first_day(src: Path) -> None:
    """A night's ordinary work: the largest day re-delivered unchanged (its rows stay what they were)."""
    _touch(max((src / "log_data").rglob("*.json"), key=lambda p: p.stat().st_size))


def _new_day(like: Path, path: Path) -> None:
    """A day of new events, shaped like ``like``'s (sessions of their own)."""
    events = [json.loads(line) for line in like.read_text().splitlines() if line.strip()]
    path.write_text("\n".join(json.dumps({**e, "sessionId": e["sessionId"] + 100_000}) for e in events))


def _loaded(tmp: Path, src: Path) -> Path:
    config = write_config(tmp, src / "song_data", src / "log_data")
    proc = cli("run", "-q", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    return config


def _matched_song_file(db: Path) -> Path:
    """The song file whose song a play matches (the sample has one): losing it would unmatch that play."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        [(file,)] = con.execute(
            'SELECT DISTINCT r."file" FROM "_sparkify_song_records" r JOIN songplays p ON p.song_id = r.song_id'
        ).fetchall()
    finally:
        con.close()
    return Path(file)


@needs_file_modes
def test_an_unreadable_redelivered_song_file_keeps_its_song_and_the_next_night_equals_a_rebuild(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    config = _loaded(tmp_path, sample_copy)
    victim = _matched_song_file(tmp_path / "wh.duckdb")
    _touch(victim)
    victim.chmod(0o000)  # an upstream umask, fixed the next day
    _redeliver_first_day(sample_copy)  # the night's other file: the one unreadable file is a small loss
    proc = cli_bound_by_file_modes("run", "--json", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert summary_of(proc)["files_unread"] == [str(victim)]
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)  # the song and its play's match are still there
    victim.chmod(0o644)
    proc = cli("run", "--json", "-c", str(config))
    assert proc.returncode == 0 and summary_of(proc)["files_read"]["song_data"] == 1, proc.stderr
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


@needs_file_modes
def test_a_full_refresh_with_a_file_unreadable_keeps_its_rows_and_reads_it_once_readable(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    config = _loaded(tmp_path, sample_copy)
    day = min((sample_copy / "log_data").rglob("*.json"), key=lambda p: p.stat().st_size)  # under the threshold
    song = _matched_song_file(tmp_path / "wh.duckdb")
    for path in (day, song):
        path.chmod(0o000)
    proc = cli_bound_by_file_modes("run", "--json", "--full-refresh", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert sorted(summary_of(proc)["files_unread"]) == sorted([str(day), str(song)])
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)
    # Readable again and re-delivered: read like any changed file, and the tables are those of a rebuild.
    for path in (day, song):
        path.chmod(0o644)
        _touch(path)
    proc = cli("run", "--json", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert summary_of(proc)["files_read"] == {"song_data": 1, "log_data": 1}
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


@pytest.mark.parametrize("cut", ["truncated", "empty"])
def test_a_redelivery_that_loses_most_of_a_day_is_held_until_accepted(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame], cut: str
) -> None:
    config = _loaded(tmp_path, sample_copy)
    days = sorted((sample_copy / "log_data").rglob("*.json"))
    day = days[4]
    lines = day.read_bytes().split(b"\n")
    day.write_bytes(b"\n".join(lines[: len(lines) // 12]) if cut == "truncated" else b"")
    # The same night brings a new day, which loads.
    _new_day(days[-1], day.with_name("2018-11-31-events.json"))
    proc = cli("run", "--json", "-c", str(config))
    assert proc.returncode == 6, proc.stderr
    summary = summary_of(proc)
    [held] = summary["files_held"]
    assert held["url"] == str(day) and held["stored"] == len(lines) and held["records"] < len(lines) // 10
    assert "--accept-shrunk" in proc.stderr
    prom = (tmp_path / "build" / "sparkify.prom").read_text()
    assert "sparkify_last_run_files_held 1" in prom
    tables = read_tables(tmp_path / "wh.duckdb")
    day_plays = lambda t: t["songplays"][t["songplays"]["start_time"].dt.day == 5].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(day_plays(tables), day_plays(clean))
    assert len(tables["songplays"]) > len(clean["songplays"])  # the new day loaded
    # Every night says so until an operator decides.
    assert cli("run", "-q", "-c", str(config)).returncode == 6
    accepted = cli("run", "--json", "-c", str(config), "--accept-shrunk", str(day))
    assert accepted.returncode == 0, accepted.stderr
    if cut == "truncated":
        assert len(day_plays(read_tables(tmp_path / "wh.duckdb"))) < len(day_plays(clean)) // 5
    else:
        assert day_plays(read_tables(tmp_path / "wh.duckdb")).empty


@pytest.mark.parametrize("workers", [1, 4], ids=["one-process", "four-workers"])
def test_a_redelivery_too_large_for_one_batch_is_weighed_by_its_size(
    sample_copy: Path, tmp_path: Path, workers: int
) -> None:
    day = max((sample_copy / "log_data").rglob("*.json"), key=lambda p: p.stat().st_size)
    lines = day.read_bytes().split(b"\n")
    shrunk = b"\n".join(lines[: len(lines) // 4])
    # One process: every day larger than a batch, read in pieces. Four workers: the shrunk day fits the run's
    # batch but not a worker's quarter of it, so the workers read it in pieces.
    batch_mb = 0.002 if workers == 1 else 2 * len(shrunk) / (1 << 20)
    config = write_config(
        tmp_path,
        sample_copy / "song_data",
        sample_copy / "log_data",
        source={"batch_mb": batch_mb},
        run={"workers": workers},
    )
    assert cli("run", "-q", "-c", str(config)).returncode == 0
    before = read_tables(tmp_path / "wh.duckdb")
    day.write_bytes(shrunk)
    proc = cli("run", "--json", "-c", str(config))
    assert proc.returncode == 6, proc.stderr
    [held] = summary_of(proc)["files_held"]
    assert (held["url"], held["unit"]) == (str(day), "bytes") and held["records"] < held["stored"] // 2
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), before)


def test_files_gone_between_listing_and_reading_are_as_if_no_longer_listed(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.run import context
    from tests.support.helpers import run_here

    config = _loaded(tmp_path, sample_copy)
    days = sorted((sample_copy / "log_data").rglob("*.json"))
    redelivered, new = days[2], days[2].with_name("2018-11-31-events.json")
    _new_day(days[-1], new)
    _touch(redelivered)
    listed = context.discover

    def list_then_remove(*args: Any, **kwargs: Any) -> Any:
        out = listed(*args, **kwargs)
        if "log_data" in str(args[0]):
            redelivered.unlink(missing_ok=True)  # a retention job, an upstream move
            new.unlink(missing_ok=True)
        return out

    monkeypatch.setattr(context, "discover", list_then_remove)  # where the run lists its sources
    summary = run_here(config)
    assert summary.status == "succeeded" and not summary.rejects_file
    assert sorted(summary.files_vanished) == sorted([str(redelivered), str(new)])
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_one_huge_value_is_one_rejected_record_and_the_night_loads(sample_copy: Path, tmp_path: Path) -> None:
    song = json.loads(sorted((sample_copy / "song_data").rglob("*.json"))[0].read_text())
    song.update(song_id="SOHUGE0000000000", artist_id="ARHUGE0000000000", artist_name="x" * 50_000_000)
    (sample_copy / "song_data" / "huge.json").write_text(json.dumps(song))
    proc = cli("run", "--json", "-c", str(write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = summary_of(proc)
    assert summary["records_rejected"] == {"song_data": 1, "log_data": 0}
    assert summary["rejected_ratio"] < 0.01 < summary["bytes_rejected"] / summary["bytes_read"]
    assert len(read_tables(tmp_path / "wh.duckdb")["songs"]) == 71


def test_one_huge_line_that_does_not_parse_is_one_record_and_a_day_glued_on_one_line_is_a_day(
    sample_copy: Path, tmp_path: Path
) -> None:
    days = sorted((sample_copy / "log_data").rglob("*.json"))
    huge = json.dumps({**json.loads(days[2].read_text().splitlines()[0]), "length": "9" * 50_000_000})
    days[2].write_text(days[2].read_text() + "\n" + huge)  # a wrong type: the parser itself rejects the line
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    proc = cli("run", "--json", "-c", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = summary_of(proc)
    assert summary["records_rejected"]["log_data"] == 1 and summary["rejected_ratio"] < 0.001
    # A first night with the largest day's line breaks lost: one rejected "line" of a day of records.
    big = max(days, key=lambda p: p.stat().st_size)
    lines = big.read_text().splitlines()
    big.write_text(" ".join(lines))
    (tmp_path / "other").mkdir()
    proc = cli(
        "run",
        "--json",
        "-c",
        str(write_config(tmp_path / "other", sample_copy / "song_data", sample_copy / "log_data")),
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert summary_of(proc)["rejected_ratio"] > 0.01


@needs_file_modes
def test_a_day_that_cannot_be_read_weighs_the_day_of_records_it_held(sample_copy: Path, tmp_path: Path) -> None:
    day = max((sample_copy / "log_data").rglob("*.json"), key=lambda p: p.stat().st_size)
    day.chmod(0o000)
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    proc = cli_bound_by_file_modes("run", "--json", "-c", str(config))
    assert proc.returncode == 4, proc.stderr
    # The largest of 30 days (about 8% of the events) weighs about that, whatever its "one reject" count says.
    assert 0.04 < summary_of(proc)["rejected_ratio"] < 0.15
