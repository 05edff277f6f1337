"""Property-based tests: the transforms keep their invariants on random inputs."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.schema import EVENT_KEYS
from pipeline.reconcile import plan
from pipeline.reconcile.partials import RunPartials
from pipeline.transform import batch, frames, levels, user_rows
from tests.support.records import event, events_frame, song, songs_frame, window_events

BASE_TS = 1541105830796

events_st = st.lists(
    st.fixed_dictionaries(
        {
            "userId": st.sampled_from(["", "1", "2", "10", "42"]),
            "sessionId": st.integers(1, 4),
            "itemInSession": st.integers(0, 6),
            "page": st.sampled_from(["NextSong", "NextSong", "NextSong", "Home", "Logout"]),
            "level": st.sampled_from(["free", "paid"]),
            "ts": st.integers(BASE_TS, BASE_TS + 5 * 86_400_000),
            "song": st.sampled_from(["Hit", "Miss"]),
        }
    ),
    min_size=1,
    max_size=40,
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SONGS = songs_frame(
    song(song_id="SO1", title="Hit", artist_name="Band", duration=200.5),
    song(song_id="SO2", title="Hit", artist_name="Band", duration=200.5),
)


def _frame(records: list[dict[str, Any]], per_file: int = 7) -> pd.DataFrame:
    return events_frame(*(event(artist="Band", length=200.5, **r) for r in records), per_file=per_file)


@SETTINGS
@given(events_st)
def test_one_row_per_key_and_songplays_match_distinct_play_events(records: list[dict[str, Any]]) -> None:
    star = batch.build_star(SONGS, _frame(records))
    for frame, key in (
        (star.users, "user_id"),
        (star.songplays, "songplay_id"),
        (star.time, "start_time"),
        (star.songs, "song_id"),
        (star.artists, "artist_id"),
    ):
        assert frame[key].is_unique
    # Records of one event (the same natural key) are one event: the greatest by ts, then page, level, song.
    events: dict[tuple[str, int, int], dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (r["ts"], r["page"], r["level"], r["song"])):
        events[(r["userId"], r["sessionId"], r["itemInSession"])] = r
    plays = {key for key, r in events.items() if r["page"] == "NextSong" and r["userId"] != ""}
    assert len(star.songplays) == len(plays)
    assert set(star.time["start_time"]) == set(star.songplays["start_time"])
    assert set(star.songplays["user_id"]) <= set(star.users["user_id"])
    # Every play of "Hit" by "Band" at 200.5 s matches, always to the same song.
    assert set(star.songplays["song_id"].dropna()) <= {"SO1"}


@SETTINGS
@given(events_st)
def test_user_level_is_the_level_of_the_latest_event(records: list[dict[str, Any]]) -> None:
    users = user_rows.users(_frame(records)).set_index("user_id")
    for uid in {r["userId"] for r in records if r["userId"]}:
        mine = [r for r in records if r["userId"] == uid]
        latest = max(mine, key=lambda r: (r["ts"], r["sessionId"], r["itemInSession"]))
        candidates = {
            r["level"]
            for r in mine
            if (r["ts"], r["sessionId"], r["itemInSession"])
            == (latest["ts"], latest["sessionId"], latest["itemInSession"])
        }
        assert users.loc[uid, "level"] in candidates


@SETTINGS
@given(events_st, st.randoms(use_true_random=False))
def test_order_and_duplicated_files_do_not_change_the_result(records: list[dict[str, Any]], rnd: Any) -> None:
    # Only inputs where a natural key identifies one event: the source guarantees that.
    unique = list({(r["userId"], r["sessionId"], r["itemInSession"]): r for r in records}.values())
    shuffled = unique[:]
    rnd.shuffle(shuffled)
    a = batch.build_star(SONGS, _frame(unique))
    b = batch.build_star(SONGS, _frame(shuffled + shuffled[: len(shuffled) // 2], per_file=3))
    for name, frame in a.frames().items():
        key = frame.columns[0]
        left = frame.sort_values(key).reset_index(drop=True)
        right = b.frames()[name].sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, obj=name)


history_st = st.lists(
    st.fixed_dictionaries(
        {
            "userId": st.sampled_from(["1", "2", "3"]),
            "sessionId": st.integers(1, 3),
            "itemInSession": st.integers(0, 30),
            "ts": st.integers(BASE_TS, BASE_TS + 40),
            "level": st.sampled_from(["free", "paid"]),
            "part": st.integers(0, 3),
        }
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda r: (r["userId"], r["sessionId"], r["itemInSession"]),
)


def _run_partials(fold_rows: int) -> RunPartials:
    class Partials(RunPartials):
        FOLD_ROWS = fold_rows

    return Partials(lookup=pd.DataFrame())


@SETTINGS
@given(history_st, st.integers(0, 60))
def test_parts_of_histories_combine_into_the_whole_whatever_they_interleave(
    records: list[dict[str, Any]], fold_rows: int
) -> None:
    """Split each user's events into parts at random (parts overlap in time, share milliseconds), combine the
    parts' users rows and level points as a run does (``RunPartials``: one by one, all at once, or in groups of
    any size), and let reconciliation's plan fill the holes the overlaps leave from the events: the result is
    what the events give as a whole."""
    events = user_rows.dedupe_events(
        _frame([{k: v for k, v in r.items() if k != "part"} for r in records], per_file=50)
    )
    parts = [r["part"] for r in records]
    order = events.set_index(["userId", "sessionId", "itemInSession"]).index
    part_of = dict(zip(((r["userId"], r["sessionId"], r["itemInSession"]) for r in records), parts, strict=True))
    which = pd.Series([part_of[k] for k in order], index=events.index)
    partials = _run_partials(fold_rows)
    for p in sorted(set(parts), reverse=True):
        chunk = events.loc[which == p]
        partials.add(user_rows.users_partial(chunk), levels.level_points(chunk))
    # What the load then does (``reconcile.plan``), on a warehouse that holds nothing yet.
    nothing = events.iloc[:0]
    combined = plan.combine_with_stored(
        partials.users,
        partials.level_points,
        partials.holes,
        user_rows.users(nothing),
        levels.user_levels(levels.level_points(nothing)),
    )
    windows = plan.windows_to_read(combined.points, combined.holes, set())
    redone = plan.Rederived()
    if len(windows):
        redone.add_windows(windows, window_events(events, windows), combined.tied)
    no_keys = frames.empty(EVENT_KEYS)
    fixes = plan.fixes(partials.users, combined, set(), windows, no_keys, redone)
    pd.testing.assert_frame_equal(fixes.user_levels, levels.user_levels(levels.level_points(events)))
    pd.testing.assert_frame_equal(fixes.users, user_rows.users(events))
