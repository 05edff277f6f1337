"""Property-based tests: the transforms keep their invariants on random inputs."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import transform as T

from .conftest import event, events_frame, song, songs_frame

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
    star = T.build_star(SONGS, _frame(records))
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
    users = T.users(_frame(records)).set_index("user_id")
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
    a = T.build_star(SONGS, _frame(unique))
    b = T.build_star(SONGS, _frame(shuffled + shuffled[: len(shuffled) // 2], per_file=3))
    for name, frame in a.frames().items():
        key = frame.columns[0]
        left = frame.sort_values(key).reset_index(drop=True)
        right = b.frames()[name].sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, obj=name)
