"""The report's own decisions: which days and weeks are whole, end labels kept apart, what thin data says."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.analytics import report
from pipeline.analytics.queries import Analytics
from pipeline.load.duckdb import DuckDBDestination
from tests.support.helpers import run_here, write_config, write_sources
from tests.support.records import event, song

T = pd.Timestamp


def test_days_the_data_covers_in_part_are_left_out_and_named() -> None:
    daily = pd.DataFrame({"day": pd.date_range("2018-11-01", "2018-12-01"), "users": 1})
    kept, left_out = report.whole_days(daily, (T("2018-11-01 21:01"), T("2018-12-01 02:26")))
    assert kept["day"].min() == T("2018-11-02") and kept["day"].max() == T("2018-11-30")
    assert left_out == ["1 Nov 2018 (the data starts at 21:01)", "1 Dec 2018 (the data ends at 02:26)"]
    # Within an hour of midnight at either end, a day counts as whole.
    kept, left_out = report.whole_days(daily, (T("2018-11-01 00:40"), T("2018-11-30 23:10")))
    assert (kept["day"].min(), kept["day"].max(), left_out) == (T("2018-11-01"), T("2018-11-30"), [])


def test_only_weeks_whose_every_day_is_whole_are_charted() -> None:
    weekly = pd.DataFrame({"week": pd.to_datetime(["2018-10-29", "2018-11-05", "2018-11-26"]), "plays": [1, 2, 3]})
    # The data starts on Thursday 1 Nov and ends at 02:26 on Saturday 1 Dec: that day is partial, so the week of 26 Nov
    # holds five whole days.
    kept, left_out = report.full_weeks(weekly, (T("2018-11-01 00:10"), T("2018-12-01 02:26")))
    assert kept["week"].tolist() == [T("2018-11-05")]
    assert left_out == ["the week of 29 Oct 2018 (4 whole days of 7)", "the week of 26 Nov 2018 (5 whole days of 7)"]


def test_end_labels_are_moved_apart_as_little_as_needed() -> None:
    assert report._spread([18.0, 17.0, 5.0], gap=2.0) == [19.0, 17.0, 5.0]
    assert report._spread([10.0, 10.0, 10.0], gap=1.0) == [10.0, 11.0, 12.0]
    assert report._spread([1.0, 9.0], gap=2.0) == [1.0, 9.0], "labels already apart stay where they are"


def test_too_little_data_says_so_rather_than_ranking_noise(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_sources(src, [song()], {"2018-11-01-events.json": [event(), event(itemInSession=1, ts=1541106106797)]})
    run_here(write_config(tmp_path, src / "song_data", src / "log_data"))
    page = report.build(Analytics(DuckDBDestination(str(tmp_path / "wh.duckdb"), "main")), "test")
    assert "Too few sessions for an answer" in page
    assert "No user has been free for 1 day or more" in page or "nothing to compare with" in page
    assert "The data covers no whole day." in page, "two plays a second apart cover no whole day"
