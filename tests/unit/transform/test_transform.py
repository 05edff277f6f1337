"""One test per rule of SPEC.md, on small frames produced by the real parser."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.schema import ARTISTS, SONGPLAYS, SONGS, TIME, USERS
from pipeline.transform import batch, catalogue, levels, play_rows, user_rows
from tests.support.records import event, events_frame, song, songs_frame

DAY = 86_400_000


def test_latest_level_wins_whatever_the_file_order() -> None:
    later = event(userId="7", level="paid", ts=1541105830796 + DAY, sessionId=2)
    earlier = event(userId="7", level="free", ts=1541105830796, sessionId=1)
    # The later event comes first in the files: recency is by ts, not by position.
    users = user_rows.users(events_frame(later, earlier, per_file=1))
    assert users["level"].tolist() == ["paid"]
    assert len(users) == 1


def test_level_ties_on_ts_go_to_the_later_item() -> None:
    a = event(userId="7", level="free", itemInSession=3)
    b = event(userId="7", level="paid", itemInSession=4)
    assert user_rows.users(events_frame(b, a))["level"].tolist() == ["paid"]


def test_users_come_from_any_page_not_only_nextsong() -> None:
    users = user_rows.users(events_frame(event(userId="9", page="Home", level="paid")))
    assert users["user_id"].tolist() == ["9"]


def test_empty_user_id_is_excluded_from_users_and_songplays() -> None:
    ev = events_frame(
        event(userId="", auth="Logged Out", firstName=None, itemInSession=0),
        event(userId="", auth="Logged Out", itemInSession=1),
        event(userId="3", itemInSession=2),
    )
    assert user_rows.users(ev)["user_id"].tolist() == ["3"]
    plays = play_rows.songplays(ev, catalogue.song_lookup(songs_frame(song())))
    assert plays["user_id"].tolist() == ["3"]


def test_only_nextsong_events_are_songplays() -> None:
    ev = events_frame(event(page="Home", itemInSession=0), event(page="NextSong", itemInSession=1))
    plays = play_rows.songplays(ev, catalogue.song_lookup(songs_frame(song())))
    assert plays["songplay_id"].tolist() == ["1:1:1"]


def test_year_zero_becomes_null() -> None:
    out = catalogue.songs(songs_frame(song(song_id="SO1", year=0), song(song_id="SO2", year=1999)))
    assert out.set_index("song_id")["year"].isna().to_dict() == {"SO1": True, "SO2": False}
    assert out.set_index("song_id").loc["SO2", "year"] == 1999


def test_empty_artist_location_becomes_null() -> None:
    out = catalogue.artists(
        songs_frame(
            song(artist_id="AR1", artist_location=""),
            song(artist_id="AR2", song_id="SO2", artist_location="Paris"),
        )
    )
    loc = out.set_index("artist_id")["location"]
    assert pd.isna(loc["AR1"]) and loc["AR2"] == "Paris"


def test_artist_record_with_most_known_attributes_wins() -> None:
    bare = song(song_id="SO1", artist_id="AR1", artist_location="")
    full = song(song_id="SO2", artist_id="AR1", artist_location="Oslo", artist_latitude=59.9, artist_longitude=10.7)
    out = catalogue.artists(songs_frame(bare, full))
    assert len(out) == 1
    assert out.iloc[0].to_dict() == {
        "artist_id": "AR1",
        "name": "Some Artist",
        "location": "Oslo",
        "latitude": 59.9,
        "longitude": 10.7,
    }


def test_exact_song_matching_needs_title_artist_and_duration() -> None:
    songs = songs_frame(song(song_id="SOX", artist_id="ARX", title="Hit", artist_name="Band", duration=15.9676))
    ev = events_frame(
        event(itemInSession=0, song="Hit", artist="Band", length=15.9676),  # exact: matches
        event(itemInSession=1, song="Hit", artist="Band", length=15.96761),  # length differs
        event(itemInSession=2, song="hit", artist="Band", length=15.9676),  # case differs
        event(itemInSession=3, song="Hit", artist="BÃ\u0083Â¶nd", length=15.9676),  # mojibake artist
    )
    plays = play_rows.songplays(ev, catalogue.song_lookup(songs)).set_index("songplay_id")
    assert plays.loc["1:1:0", ["song_id", "artist_id"]].tolist() == ["SOX", "ARX"]
    assert plays.loc[["1:1:1", "1:1:2", "1:1:3"], "song_id"].isna().all()


def test_float_parsing_is_exact() -> None:
    # pandas' default JSON parser reads 15.9676 as 15.967600000000001; matching depends on exactness.
    assert songs_frame(song(duration=15.9676))["duration"].iloc[0] == 15.9676


def test_duplicate_catalogue_songs_never_double_count_a_play() -> None:
    songs = songs_frame(song(song_id="SOB"), song(song_id="SOA"))  # same title, artist, duration
    plays = play_rows.songplays(events_frame(event()), catalogue.song_lookup(songs))
    assert plays["song_id"].tolist() == ["SOA"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["SOA", "SOB", "SOC"]),
            st.sampled_from(["Song", "Other", "Ärger", None]),
            st.sampled_from(["Artist", "artist", "Ärtist", None]),
            st.sampled_from([200.5, 100.0, 0.0, None]),
            st.sampled_from([0, 1999, 2001]),
            st.sampled_from(["", "Place"]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_the_song_lookup_is_the_same_whatever_order_the_catalogue_is_read_in(
    rows: list[tuple[str, str | None, str | None, float | None, int, str]], rnd: random.Random
) -> None:
    """A night reads the stored catalogue in no order; the lookup must not depend on it. Records of one song_id
    disagree, and several songs share a key: the smallest song_id of a key wins, one row per key, in key order."""
    records = [
        song(song_id=s, title=t, artist_name=a, duration=d, year=y, artist_location=loc) for s, t, a, d, y, loc in rows
    ]
    shuffled = records[:]
    rnd.shuffle(shuffled)
    lookup = catalogue.song_lookup(songs_frame(*records))
    pd.testing.assert_frame_equal(lookup, catalogue.song_lookup(songs_frame(*shuffled)))
    assert not lookup.duplicated(catalogue.LOOKUP_KEY).any()
    keys = list(zip(*(lookup[c].tolist() for c in catalogue.LOOKUP_KEY), strict=True))
    assert keys == sorted(keys)
    chosen = catalogue._chosen_songs(songs_frame(*records)).dropna(subset=["title", "artist_name", "duration"])
    smallest = chosen.groupby(["title", "artist_name", "duration"])["song_id"].min()
    assert sorted(zip(keys, lookup["song_id"], strict=True)) == sorted(smallest.items())


def test_time_parts_follow_iso_week_and_weekday() -> None:
    # 2018-11-04 is a Sunday (ISO weekday 7, ISO week 44); 2018-12-31 is a Monday in ISO week 1 of 2019.
    sunday = 1541336400796  # 2018-11-04T13:00:00.796Z
    new_year = 1546261200796  # 2018-12-31T13:00:00.796Z
    plays = play_rows.songplays(
        events_frame(event(ts=sunday, itemInSession=0), event(ts=new_year, itemInSession=1)),
        catalogue.song_lookup(songs_frame(song())),
    )
    time = play_rows.time(plays).set_index("start_time")
    assert time.loc[pd.Timestamp("2018-11-04 13:00:00.796")].to_dict() == {
        "hour": 13,
        "day": 4,
        "week": 44,
        "month": 11,
        "year": 2018,
        "weekday": 7,
    }
    assert time.loc[pd.Timestamp("2018-12-31 13:00:00.796")].to_dict() == {
        "hour": 13,
        "day": 31,
        "week": 1,
        "month": 12,
        "year": 2018,
        "weekday": 1,
    }


def test_time_has_one_row_per_distinct_start_time() -> None:
    plays = play_rows.songplays(
        events_frame(event(itemInSession=0), event(itemInSession=1, userId="2")),
        catalogue.song_lookup(songs_frame(song())),
    )
    assert len(plays) == 2 and len(play_rows.time(plays)) == 1


def test_songplay_ids_are_the_natural_key_and_independent_of_order() -> None:
    a, b = event(userId="10", sessionId=5, itemInSession=3), event(userId="1", sessionId=5, itemInSession=4)
    lookup = catalogue.song_lookup(songs_frame(song()))
    one = play_rows.songplays(events_frame(a, b), lookup)
    two = play_rows.songplays(events_frame(b, a), lookup)
    assert sorted(one["songplay_id"]) == sorted(two["songplay_id"]) == ["10:5:3", "1:5:4"]


def test_the_same_event_in_two_files_is_one_songplay() -> None:
    e = event()
    plays = play_rows.songplays(events_frame(e, e, per_file=1), catalogue.song_lookup(songs_frame(song())))
    assert len(plays) == 1


def test_frames_have_exactly_the_schema_columns() -> None:
    songs = songs_frame(song())
    star = batch.build_star(songs, events_frame(event()))
    for frame, table in (
        (star.users, USERS),
        (star.songs, SONGS),
        (star.artists, ARTISTS),
        (star.time, TIME),
        (star.songplays, SONGPLAYS),
    ):
        assert list(frame.columns) == table.column_names


def test_transforms_do_not_modify_their_inputs() -> None:
    ev = events_frame(event(), event(userId="", itemInSession=1))
    before = ev.copy()
    batch.build_star(songs_frame(song()), ev)
    pd.testing.assert_frame_equal(ev, before)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.sampled_from([-1, 1541105830796, 1541105830797, 1541105890796]),
            st.integers(-1, 2),
            st.integers(-1, 2),
        ),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),
)
def test_events_are_ordered_by_user_time_session_and_item_like_a_four_key_sort(
    rows: list[tuple[int, int, int, int]], huge_span: bool
) -> None:
    user, ts, session, item = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    if huge_span:  # (user, ts) no longer fits one integer: the four-key sort itself
        ts = np.where(ts == -1, -(2**61), ts)
    expected = np.lexsort((item, session, ts, user))
    got = levels._by_user_then_time(user, ts, session, item)
    key = np.stack([user, ts, session, item], axis=1)
    assert key[got].tolist() == key[expected].tolist()
    assert sorted(got.tolist()) == list(range(len(rows)))
