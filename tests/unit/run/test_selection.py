"""Which files a run reads, by the ledger and the backfill window, and the ledger rows it writes."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from pipeline.core.schema import LOADED_FILES
from pipeline.extract.discover import SourceFile
from pipeline.run.selection import RunOptions, file_date, ledger_frame, select_files


def _file(name: str, size: int = 10, version: str = "v1") -> SourceFile:
    return SourceFile(path=f"/logs/{name}", url=f"s3://b/logs/{name}", size=size, version=version)


LEDGER = {
    "s3://b/logs/2018-11-01-events.json": ("log_data", 10, "v1"),
    "s3://b/logs/2018-11-02-events.json": ("log_data", 10, "v1"),
    "s3://b/logs/2018-11-03-events.json": ("log_data", 10, "v1"),
}


def test_a_night_reads_new_and_changed_files_and_skips_those_loaded_as_they_are() -> None:
    files = [
        _file("2018-11-01-events.json"),  # as loaded
        _file("2018-11-02-events.json", size=11),  # grown
        _file("2018-11-03-events.json", version="v2"),  # replaced, same size
        _file("2018-11-04-events.json"),  # new
    ]
    chosen, skipped = select_files(files, LEDGER, RunOptions(), windowed=True)
    assert [f.path[-22:] for f in chosen] == [
        "2018-11-02-events.json",
        "2018-11-03-events.json",
        "2018-11-04-events.json",
    ]
    assert skipped == 1
    everything, skipped = select_files(files, LEDGER, RunOptions(full_refresh=True), windowed=True)
    assert everything == files and skipped == 0


def test_the_backfill_window_is_inclusive_applies_to_logs_only_and_leaves_out_undated_files() -> None:
    files = [_file(f"2018-11-{d:02d}-events.json", version="new") for d in (1, 2, 3, 4)] + [_file("notes.json")]
    window = RunOptions(since=date(2018, 11, 2), until=date(2018, 11, 3))
    chosen, _ = select_files(files, LEDGER, window, windowed=True)
    assert [file_date(f.path) for f in chosen] == [date(2018, 11, 2), date(2018, 11, 3)]
    songs, _ = select_files(files, {}, window, windowed=False)
    assert songs == files, "song files have no day: the window does not apply to them"


@pytest.mark.parametrize(
    ("path", "day"),
    [
        ("log_data/2018/11/2018-11-30-events.json", date(2018, 11, 30)),
        ("log_data/2018/02/2018-02-30-events.json", None),  # no such day
        ("2018-11-30/part-0.json", None),  # the date must be in the file's name
    ],
)
def test_a_log_files_day_is_the_date_in_its_name(path: str, day: date | None) -> None:
    assert file_date(path) == day


def test_the_ledger_rows_name_each_files_source_size_version_and_run() -> None:
    now = datetime(2026, 12, 4, 2, 15)
    rows = ledger_frame([_file("a.json", 5, "e1")], [_file("2018-11-01-events.json")], "run-1", now)
    assert list(rows.columns) == LOADED_FILES.column_names
    assert rows[["source", "size", "version", "run_id"]].values.tolist() == [
        ["song_data", 5, "e1", "run-1"],
        ["log_data", 10, "v1", "run-1"],
    ]
    assert (rows["loaded_at"] == now).all()
