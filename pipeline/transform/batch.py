"""A batch of source records to everything the load needs: its records, star rows and partials.

``log_batch`` and ``song_records`` are the only path from parsed records to rows; the local engine, the Ray
tasks, the notebooks and the tests all call them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.extract.repair import repair_events
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from pipeline.transform.catalogue import catalogue
from pipeline.transform.frames import to_records
from pipeline.transform.levels import level_points, user_levels
from pipeline.transform.play_rows import songplays_of_deduped, time
from pipeline.transform.user_rows import dedupe_events, finish_users, users_partial


@dataclass
class LogBatch:
    """What one batch of log records contributes: rows to stage, and partials to combine with other batches."""

    records: pd.DataFrame  # kept in the warehouse (schema.EVENT_RECORDS)
    songplays: pd.DataFrame
    time: pd.DataFrame
    users: pd.DataFrame  # partial: see ``users_partial``
    level_points: pd.DataFrame
    # Users whose partials in this batch could not be decided (none within one batch; kept for symmetry).
    conflicts: set[str] = field(default_factory=set)
    # Text fields whose double encoding was repaired.
    repaired: int = 0


def log_batch(events: pd.DataFrame, lookup: pd.DataFrame, urls: Sequence[str] | None = None) -> LogBatch:
    """The star rows one batch of parsed events gives: the only path from log records to star rows.

    ``urls`` names the files ``events[_file]`` indexes; without it (notebooks) no records are kept. The kept
    records hold the text as delivered; every row derived from them (here, and in ``reconcile``) reads it
    through ``repair_events`` first.
    """
    records = to_records(events, LOG_SOURCE, urls) if urls is not None else pd.DataFrame()
    events, repaired = repair_events(events)
    events = dedupe_events(events)
    fact = songplays_of_deduped(events, lookup)
    return LogBatch(
        records=records,
        songplays=fact,
        time=time(fact),
        users=users_partial(events),
        level_points=level_points(events),
        repaired=repaired,
    )


def song_records(frame: pd.DataFrame, urls: Sequence[str]) -> pd.DataFrame:
    """Parsed song records as the warehouse keeps them."""
    return to_records(frame, SONG_SOURCE, urls)


@dataclass
class Star:
    """The star frames of one dataset, built in memory (notebooks, tests)."""

    users: pd.DataFrame
    songs: pd.DataFrame
    artists: pd.DataFrame
    time: pd.DataFrame
    songplays: pd.DataFrame
    user_levels: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "users": self.users,
            "artists": self.artists,
            "songs": self.songs,
            "time": self.time,
            "songplays": self.songplays,
            "user_levels": self.user_levels,
        }


def build_star(song_records: pd.DataFrame, events: pd.DataFrame) -> Star:
    """Every star table from the two source frames, through the same functions a run uses."""
    cat = catalogue(song_records)
    batch = log_batch(events, cat.lookup)
    return Star(
        users=finish_users(batch.users),
        songs=cat.songs,
        artists=cat.artists,
        time=batch.time,
        songplays=batch.songplays,
        user_levels=user_levels(batch.level_points),
    )


def from_files(records: pd.DataFrame, urls: Iterable[str]) -> np.ndarray:
    """Which kept records came from one of ``urls``. Arrow's hash lookup: pandas' ``isin`` on Arrow strings
    walks the URLs in Python."""
    if records.empty:
        return np.zeros(0, dtype=bool)
    column = pa.array(records["file"], pa.string(), from_pandas=True)
    found = pc.is_in(column, value_set=pa.array(list(urls), pa.string()))
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
