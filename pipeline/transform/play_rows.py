"""Events to ``songplays`` and ``time``: one row per NextSong event, matched to a song by title, artist and
length, with an id derived from the event's key so a re-delivered event keeps its row.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.schema import SONGPLAYS, TIME
from pipeline.transform.catalogue import LOOKUP_KEY
from pipeline.transform.frames import NEXT_SONG, conform, ms_to_timestamp
from pipeline.transform.user_rows import dedupe_events

PLAY_FIELDS = [
    "userId",
    "sessionId",
    "itemInSession",
    "ts",
    "level",
    "song",
    "artist",
    "length",
    "location",
    "userAgent",
]


def plays(events: pd.DataFrame) -> pd.DataFrame:
    """The events that are song plays: ``page = 'NextSong'`` by a known user (only the fields plays use).

    Filtering column by column is 4x faster than ``.loc[mask, columns]`` on Arrow-backed columns, which
    goes through pandas' block manager; the filter is most of the cost of ``songplays``.
    """
    mask = ((events["page"] == NEXT_SONG) & (events["userId"] != "")).to_numpy(bool, na_value=False)
    index = events.index[mask]
    return pd.DataFrame({c: events[c].array[mask] for c in PLAY_FIELDS}, index=index)


def songplay_ids(user_id: pd.Series, session_id: pd.Series, item_in_session: pd.Series) -> pd.Series:
    """``'<userId>:<sessionId>:<itemInSession>'``: the natural key itself, so ids never collide.

    The two numbers hold no ':', so the id splits back unambiguously from the right even if a userId did.
    """
    joined = pc.binary_join_element_wise(
        pa.array(user_id, pa.string()),
        pc.cast(pa.array(session_id, pa.int64()), pa.string()),
        pc.cast(pa.array(item_in_session, pa.int64()), pa.string()),
        ":",
    )
    return pd.Series(pd.arrays.ArrowStringArray(joined), index=user_id.index, name="songplay_id")


def songplays_of_deduped(events: pd.DataFrame, lookup: pd.DataFrame) -> pd.DataFrame:
    """Songplays from deduplicated events: each play matched exactly against the lookup."""
    df = plays(events).rename(columns={"song": "song_title", "artist": "artist_name", "length": "song_length"})
    # The lookup holds one row per key by construction (``song_lookup``); validating that again here would
    # cost as much as the join.
    df = df.merge(lookup, how="left", on=LOOKUP_KEY, sort=False)
    out = pd.DataFrame(
        {
            "songplay_id": songplay_ids(df["userId"], df["sessionId"], df["itemInSession"]),
            "start_time": ms_to_timestamp(df["ts"]),
            "user_id": df["userId"],
            "level": df["level"],
            "song_id": df["song_id"],
            "artist_id": df["artist_id"],
            "session_id": df["sessionId"],
            "location": df["location"],
            "user_agent": df["userAgent"],
            "song_title": df["song_title"],
            "artist_name": df["artist_name"],
            "song_length": df["song_length"],
        }
    )
    return conform(out, SONGPLAYS)


def songplays(events: pd.DataFrame, lookup: pd.DataFrame) -> pd.DataFrame:
    """One row per NextSong event with a userId; an event seen twice (in two files) is kept once."""
    return songplays_of_deduped(dedupe_events(events), lookup)


def time(songplays_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct start_time. Week and weekday follow ISO 8601 (Monday = 1 ... Sunday = 7)."""
    ts = pd.Series(songplays_frame["start_time"].drop_duplicates().sort_values().to_numpy())
    iso = ts.dt.isocalendar()
    out = pd.DataFrame(
        {
            "start_time": ts,
            "hour": ts.dt.hour.astype("int16"),
            "day": ts.dt.day.astype("int16"),
            "week": iso["week"].astype("int16"),
            "month": ts.dt.month.astype("int16"),
            "year": ts.dt.year.astype("int16"),
            "weekday": iso["day"].astype("int16"),
        }
    )
    return conform(out, TIME)
