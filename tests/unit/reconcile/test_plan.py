"""Reconciliation's decisions on frames alone: what the stored rows and the run's partials combine to, what
must be read again, in what chunks, and the rows the load then writes."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipeline.core.schema import EVENT_KEYS
from pipeline.reconcile import plan
from pipeline.transform import catalogue, frames, levels, user_rows
from tests.support.records import event, events_frame, song, songs_frame

T0 = 1_541_105_830_796


def _stored(*records: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``users`` and ``user_levels`` rows a warehouse holds after loading ``records``."""
    events = user_rows.dedupe_events(events_frame(*records))
    return user_rows.users(events), levels.user_levels(levels.level_points(events))


def _run(*records: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A run's partials: users rows with their order key, level points, and (one batch) no holes."""
    events = user_rows.dedupe_events(events_frame(*records))
    return user_rows.users_partial(events), levels.level_points(events), levels.empty_holes()


def test_a_later_event_decides_the_user_and_extends_the_history_without_reading_anything() -> None:
    stored_users, stored_levels = _stored(event(userId="1", level="free", ts=T0))
    combined = plan.combine_with_stored(
        *_run(event(userId="1", level="paid", ts=T0 + 1000)), stored_users, stored_levels
    )
    assert user_rows.finish_users(combined.users)["level"].tolist() == ["paid"]
    assert combined.tied == set() and combined.holes.empty
    history = levels.user_levels(combined.points)
    assert history["level"].tolist() == ["free", "paid"]
    assert list(history["valid_from"]) == [pd.Timestamp(T0, unit="ms"), pd.Timestamp(T0 + 1000, unit="ms")]
    assert plan.windows_to_read(combined.points, combined.holes, set()).empty


def test_a_run_event_in_the_same_millisecond_as_the_stored_latest_ties_and_that_millisecond_is_read() -> None:
    stored_users, stored_levels = _stored(event(userId="1", level="free", ts=T0, sessionId=1))
    combined = plan.combine_with_stored(
        *_run(event(userId="1", level="paid", ts=T0, sessionId=2)), stored_users, stored_levels
    )
    assert combined.tied == {"1"}
    assert combined.holes[["user_id", "from_ts", "to_ts"]].values.tolist() == [["1", T0, T0]]
    windows = plan.windows_to_read(combined.points, combined.holes, set())
    assert windows[["user_id", "from_ts", "to_ts"]].values.tolist() == [["1", T0, T0]]


def test_a_whole_user_is_read_over_all_time_and_their_holes_are_not_read_apart() -> None:
    holes = pd.DataFrame({"user_id": ["7", "8"], "from_ts": [10, 20], "to_ts": [15, 25]})
    points = levels.empty_points()
    windows = plan.windows_to_read(points, holes, whole={"7"})
    got = {r.user_id: (r.from_ts, r.to_ts) for r in windows.itertuples()}
    assert got == {"8": (20, 25), "7": (plan.EVERYTHING, plan.LATEST)}


def test_windows_are_read_in_chunks_of_bounded_records_and_a_users_windows_stay_together() -> None:
    windows = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "from_ts": [1, 2, 1, 1], "to_ts": [1, 2, 1, 1]})
    sizes = {("a", 1): 2, ("a", 2): 2, ("b", 1): 3, ("c", 1): 9}
    by_window = plan.chunked(windows, sizes, per_chunk=5, by_user=False)
    assert [list(zip(c["user_id"], c["from_ts"], strict=True)) for c in by_window] == [
        [("a", 1), ("a", 2)],
        [("b", 1)],
        [("c", 1)],  # larger than a chunk: a chunk of its own
    ]
    by_user = plan.chunked(windows, sizes, per_chunk=3, by_user=True)
    assert [sorted(set(c["user_id"])) for c in by_user] == [["a"], ["b"], ["c"]]


def test_only_the_contested_events_plays_are_derived_again_and_the_fixes_name_their_keys() -> None:
    lookup = catalogue.song_lookup(songs_frame(song()))
    records = [event(userId="1", itemInSession=0), event(userId="1", itemInSession=1, ts=T0 + 1)]
    contested = pd.DataFrame({"user_id": ["1"], "session_id": [1], "item_in_session": [1]})
    run_users, run_points, run_holes = _run(*records)
    stored_users, stored_levels = _stored()
    combined = plan.combine_with_stored(run_users, run_points, run_holes, stored_users, stored_levels)
    whole = {"1"}
    windows = plan.windows_to_read(combined.points, combined.holes, whole)
    redone = plan.Rederived()
    redone.add_whole(user_rows.dedupe_events(events_frame(*records)), contested, lookup)
    fixes = plan.fixes(run_users, combined, whole, windows, contested, redone)
    assert fixes.songplays["songplay_id"].tolist() == ["1:1:1"]
    assert fixes.songplays["song_id"].notna().all(), "matched against the run's lookup"
    assert fixes.songplay_keys["songplay_id"].tolist() == ["1:1:1"]
    assert fixes.user_keys["user_id"].tolist() == ["1"]
    assert fixes.users["user_id"].tolist() == ["1"] and len(fixes.user_levels) == 1
    assert fixes.stats == {"contested_events": 1, "users_whole": 1, "users_windows": 0}
    assert len(fixes.time) == 1


def test_with_nothing_contested_and_no_holes_the_fixes_are_the_combined_rows() -> None:
    run_users, run_points, run_holes = _run(event(userId="2", level="paid"))
    stored_users, stored_levels = _stored(event(userId="2", level="free", ts=T0 - 5000))
    combined = plan.combine_with_stored(run_users, run_points, run_holes, stored_users, stored_levels)
    no_keys = frames.empty(EVENT_KEYS)
    windows = plan.windows_to_read(combined.points, combined.holes, set())
    fixes = plan.fixes(run_users, combined, set(), windows, no_keys, plan.Rederived())
    assert fixes.songplays.empty and fixes.songplay_keys.empty
    assert fixes.users["level"].tolist() == ["paid"]
    assert fixes.user_levels["level"].tolist() == ["free", "paid"]
