"""Source records to star rows: pure functions, no I/O, so notebooks and tests can call each one.

The rules are SPEC.md's, and every choice it leaves open is made **by the data, never by arrival**: when two
records compete for one row (the same event in two files, one song in two song files, a user's two events in
the same millisecond), a total order on their values decides. That is what makes the warehouse after any
sequence of nightly runs, in any batch size, equal to one run over every file: each row is a function of the
set of records that carry its key, not of the order they were read in.

Three kinds of function live here:

- per table (``songs``, ``artists``, ``users``, ``songplays``, ``time``, ``user_levels``): the rule itself;
- ``catalogue`` and ``log_batch``: the only path from a batch of source records to star rows, used by the
  local engine, the Ray tasks, the notebooks and the tests (reconciliation, which derives rows again from
  records read back, calls the same per-table functions ``log_batch`` is made of);
- ``combine_users`` and ``combine_level_points``: merge two partial results (two batches, or a run and what
  the warehouse holds). They are exact whenever the parts do not interleave in time, and otherwise name the
  users whose rows must be derived again from all their records.

Frames use the source field names (plus ``_file``/``_line`` provenance) on the way in and return exactly the
columns ``schema.py`` defines for each table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .extract import FILE_COL, LINE_COL
from .repair import repair_events
from .schema import ARTISTS, LOOKUP_CHANGES, SONGPLAYS, SONGS, TIME, USER_LEVELS, USERS, Table
from .sources import LOG_SOURCE, SONG_SOURCE, SourceSpec

NEXT_SONG = "NextSong"
MS = 1_000_000  # nanoseconds per millisecond

# An event's natural key: the same event in two files, or twice in one, is one event.
EVENT_KEY = ["userId", "sessionId", "itemInSession"]
# Which of two records of one event wins: the later ts, then the greater value field by field in this order
# (null lowest). Key and order together are every field, so two records that tie on all of them are equal.
EVENT_ORDER = [
    "ts",
    "page",
    "level",
    "song",
    "artist",
    "length",
    "firstName",
    "lastName",
    "gender",
    "location",
    "userAgent",
    "auth",
    "method",
    "status",
    "registration",
]
# Of several records of one song_id (or artist_id), the one with most known attributes wins, then the greater
# value field by field in this order.
SONG_ORDER = [
    "title",
    "artist_id",
    "duration",
    "year",
    "artist_name",
    "artist_location",
    "artist_latitude",
    "artist_longitude",
    "num_songs",
]
LOOKUP_KEY = ["song_title", "artist_name", "song_length"]
# What ``users_partial`` and ``level_points`` read of an event.
HISTORY_FIELDS = ["userId", "sessionId", "itemInSession", "ts", "level", "firstName", "lastName", "gender"]
# A partial users row carries the order key of the event it came from, so two partials can be compared.
# Rows read back from the warehouse know only ts: their session and item are null.
USER_ORDER = ["_ts", "_session", "_item"]


def empty(table: Table) -> pd.DataFrame:
    """A frame with no rows and ``table``'s columns and types."""
    return table.arrow_schema().empty_table().to_pandas(types_mapper=pd.ArrowDtype)


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames one after another; empty ones are left out, so they cannot change the result's types."""
    full = [f for f in frames if len(f)]
    if not full:
        return frames[0].iloc[:0]
    return pd.concat(full, ignore_index=True) if len(full) > 1 else full[0].reset_index(drop=True)


def _conform(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    return frame.loc[:, table.column_names].reset_index(drop=True)


def _blank_to_null(s: pd.Series) -> pd.Series:
    return s.mask(s.str.strip() == "")


def _greatest(frame: pd.DataFrame, key: list[str], order: list[str]) -> pd.DataFrame:
    """One row per ``key``: the greatest by ``order`` (nulls lowest). Rows keep their relative order.

    Only keys that occur more than once are sorted; in real data that is almost none.
    """
    if frame.empty:
        return frame
    contested = frame.duplicated(key, keep=False).to_numpy()
    if not contested.any():
        return frame
    winners = (
        frame[contested].sort_values(key + order, na_position="first", kind="stable").drop_duplicates(key, keep="last")
    )
    return pd.concat([frame[~contested], winners]).sort_index(kind="stable")


def _ms_to_timestamp(ms: pd.Series | np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(ms, dtype="int64"), unit="ms"))


def timestamp_to_ms(ts: pd.Series) -> np.ndarray:
    """Warehouse TIMESTAMPs (any unit) back to epoch milliseconds."""
    return pd.to_datetime(ts).to_numpy("datetime64[ms]").astype("int64")


# ------------------------------------------------------------------------------------------- songs, artists


def _chosen_songs(song_records: pd.DataFrame) -> pd.DataFrame:
    """One record per song_id: most known attributes, then the greater values (see ``SONG_ORDER``)."""
    df = song_records.assign(
        _known=song_records[["title", "artist_id", "duration"]].notna().sum(axis=1)
        + (song_records["year"].fillna(0) != 0).astype(int)
    )
    return _greatest(df, ["song_id"], ["_known", *SONG_ORDER])


def songs(song_records: pd.DataFrame) -> pd.DataFrame:
    """One row per song_id; of several records of one song, the most complete wins, then the greater values."""
    df = _chosen_songs(song_records)
    out = pd.DataFrame(
        {
            "song_id": df["song_id"],
            "title": df["title"],
            "artist_id": df["artist_id"],
            # 0 is the Million Song Dataset's "unknown year".
            "year": df["year"].mask(df["year"] == 0).astype("Int16"),
            "duration": df["duration"],
        }
    )
    return _conform(out.sort_values("song_id"), SONGS)


def artists(song_records: pd.DataFrame) -> pd.DataFrame:
    """One row per artist_id, from every song file of the artist.

    The files disagree (one has the location, another has it empty; names are spelled several ways), so the
    record with the most known attributes wins, then the greater values: the same records always give the
    same row, whichever night each arrived.
    """
    df = pd.DataFrame(
        {
            "artist_id": song_records["artist_id"],
            "name": song_records["artist_name"],
            "location": _blank_to_null(song_records["artist_location"]),
            "latitude": song_records["artist_latitude"],
            "longitude": song_records["artist_longitude"],
        }
    )
    df["_known"] = df[["name", "location", "latitude", "longitude"]].notna().sum(axis=1)
    df = _greatest(df, ["artist_id"], ["_known", "name", "location", "latitude", "longitude"])
    return _conform(df.sort_values("artist_id"), ARTISTS)


def song_lookup(song_records: pd.DataFrame) -> pd.DataFrame:
    """(title, artist name, duration) -> (song_id, artist_id), one song per key.

    Exact matching as SPEC.md defines it, on each song's own record: its title, duration and the artist name
    *that song file* spells (the catalogue spells some artists several ways; ``artists.name`` holds one). Several
    songs can share all three (one recording on two releases): the smallest song_id wins, so a play is never
    counted twice.
    """
    df = _chosen_songs(song_records)
    df = df.loc[df["title"].notna() & df["artist_name"].notna() & df["duration"].notna()]
    out = pd.DataFrame(
        {
            "song_title": df["title"].astype("string[pyarrow]"),
            "artist_name": df["artist_name"].astype("string[pyarrow]"),
            "song_length": df["duration"].astype("float64"),
            "song_id": df["song_id"].astype("string[pyarrow]"),
            "artist_id": df["artist_id"].astype("string[pyarrow]"),
        }
    )
    # Sorted by the key, then song_id: the first of each key is its smallest song_id, and the lookup is in key
    # order at once. One sort by Arrow on the typed columns, not two stable sorts in pandas.
    columns = pa.table({c: pa.array(out[c]) for c in [*LOOKUP_KEY, "song_id"]})
    out = out.iloc[pc.sort_indices(columns, sort_keys=[(c, "ascending") for c in columns.column_names]).to_numpy()]
    out = out.loc[~out.duplicated(LOOKUP_KEY).to_numpy()]
    return _conform(out, LOOKUP_CHANGES)


@dataclass
class Catalogue:
    """What the song files give: two dimensions and the lookup plays are matched with."""

    songs: pd.DataFrame
    artists: pd.DataFrame
    lookup: pd.DataFrame


def catalogue(song_records: pd.DataFrame) -> Catalogue:
    """The song side of the star from every current song record (the catalogue is small: it is always whole)."""
    return Catalogue(songs=songs(song_records), artists=artists(song_records), lookup=song_lookup(song_records))


def _changed(new: pd.DataFrame, old: pd.DataFrame, key: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of ``new`` not identical in ``old`` (to write), and keys of ``old`` absent from ``new`` (to delete)."""
    if old.empty:  # a first load: everything is new, and comparing with nothing is not free
        return new.reset_index(drop=True), old[key].reset_index(drop=True)
    cols = list(new.columns)
    merged = new.merge(old[cols], how="left", on=cols, indicator=True)
    upsert = merged.loc[merged["_merge"] == "left_only", cols]
    gone = old.loc[~old.set_index(key).index.isin(new.set_index(key).index), key]
    return upsert.reset_index(drop=True), gone.reset_index(drop=True)


@dataclass
class CatalogueChanges:
    """What a run changes on the song side, relative to what the warehouse holds."""

    songs: pd.DataFrame
    songs_gone: pd.DataFrame
    artists: pd.DataFrame
    artists_gone: pd.DataFrame
    # Keys whose song changed (added, removed, re-pointed); stored plays of these keys are matched again.
    lookup: pd.DataFrame


def catalogue_changes(new: Catalogue, old: Catalogue) -> CatalogueChanges:
    songs_upsert, songs_gone = _changed(new.songs, old.songs, ["song_id"])
    artists_upsert, artists_gone = _changed(new.artists, old.artists, ["artist_id"])
    lookup_upsert, lookup_gone = _changed(new.lookup, old.lookup, LOOKUP_KEY)
    none = pd.array([None] * len(lookup_gone), dtype="string[pyarrow]")
    lookup_gone = lookup_gone.assign(song_id=none, artist_id=none)
    lookup = concat([lookup_upsert, lookup_gone])
    return CatalogueChanges(
        songs=songs_upsert,
        songs_gone=songs_gone,
        artists=artists_upsert,
        artists_gone=artists_gone,
        lookup=_conform(lookup, LOOKUP_CHANGES).astype(new.lookup.dtypes.to_dict()),
    )


# ------------------------------------------------------------------------------------------- events


def dedupe_events(events: pd.DataFrame) -> pd.DataFrame:
    """One record per event (natural key), the greatest by ``EVENT_ORDER``: the same event in two files is one."""
    return _greatest(events, EVENT_KEY, EVENT_ORDER)


def _known_user(events: pd.DataFrame) -> np.ndarray:
    return (events["userId"] != "").to_numpy(bool, na_value=False)


def _latest_per_user(events: pd.DataFrame) -> np.ndarray:
    """Row positions of each known user's latest event by (ts, sessionId, itemInSession), in row order.

    On deduplicated events the three are unique per user, so this is a total order. Hash aggregation finds
    each user's latest ts; only the rows at that ts (usually one per user) are sorted to break ties. Sorting
    every event by four keys was 6x slower on a 666k-event batch.
    """
    known = _known_user(events)
    rows = np.flatnonzero(known)
    if not len(rows):
        return rows
    codes = pd.factorize(events["userId"][known])[0]
    ts = events["ts"].to_numpy("int64", na_value=-1)[rows]
    latest_ts = pd.Series(ts).groupby(codes).max().to_numpy()  # indexed by code: codes are 0..k-1
    at_latest = ts == latest_ts[codes]
    rows, codes = rows[at_latest], codes[at_latest]
    session = events["sessionId"].to_numpy("int64", na_value=-1)[rows]
    item = events["itemInSession"].to_numpy("int64", na_value=-1)[rows]
    order = np.lexsort((item, session, codes))
    sorted_codes = codes[order]
    is_last = np.append(sorted_codes[1:] != sorted_codes[:-1], True)
    return np.sort(rows[order[is_last]])


def users_partial(events: pd.DataFrame) -> pd.DataFrame:
    """Each known user's latest event (any page) as a users row, with the order key it was chosen by.

    Expects deduplicated events (``dedupe_events``).
    """
    df = events.iloc[_latest_per_user(events)]
    out = pd.DataFrame(
        {
            "user_id": df["userId"].to_numpy(),
            "first_name": df["firstName"].to_numpy(),
            "last_name": df["lastName"].to_numpy(),
            "gender": df["gender"].to_numpy(),
            "level": df["level"].to_numpy(),
            "last_seen_at": _ms_to_timestamp(df["ts"]).to_numpy(),
            "_ts": df["ts"].to_numpy("int64"),
            "_session": pd.array(df["sessionId"].to_numpy("int64"), dtype="Int64"),
            "_item": pd.array(df["itemInSession"].to_numpy("int64"), dtype="Int64"),
        }
    )
    return out.astype({c: "string[pyarrow]" for c in ("user_id", "first_name", "last_name", "gender", "level")})


def empty_users_partial() -> pd.DataFrame:
    return users_partial(empty_events())


def empty_events() -> pd.DataFrame:
    return records_frame(empty(LOG_SOURCE.records), LOG_SOURCE)[0]


def finish_users(partial: pd.DataFrame) -> pd.DataFrame:
    return _conform(partial.sort_values("user_id"), USERS)


def users(events: pd.DataFrame) -> pd.DataFrame:
    """One row per non-empty userId, from the user's latest event by ts (any page, not only NextSong).

    Ties on ts (two events in the same millisecond) go to the later item in the later session, so the
    result does not depend on file order.
    """
    return finish_users(users_partial(dedupe_events(events)))


def combine_users(*partials: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """Merge partial users rows: per user the one from the latest event.

    Returns the merged rows and the users it cannot decide: two rows at the same ts where one does not know
    its session and item (a row read back from the warehouse). Those must be derived again from all records.
    """
    frames = [p for p in partials if len(p)]
    if not frames:
        return partials[0], set()
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if not df["user_id"].duplicated().any():
        return df, set()
    top = df.loc[df["_ts"] == df.groupby("user_id")["_ts"].transform("max")]
    tied = top["user_id"].duplicated(keep=False)
    unknown = top["_session"].isna()
    conflicts = set(top.loc[tied & unknown, "user_id"].astype(str))
    top = top.sort_values(["user_id", "_session", "_item"], na_position="first", kind="stable")
    merged = top.drop_duplicates("user_id", keep="last")
    merged = merged.loc[~merged["user_id"].isin(conflicts)]
    return merged.reset_index(drop=True), conflicts


# ------------------------------------------------------------------------------------------- the level history
#
# A user's level history is a function of the sequence of their events' levels. It is carried between
# batches and runs as *points* (user_id, ts, level): the first event of each period and the user's last event.
# Periods computed from the points of a sequence equal those computed from the sequence itself, and the points
# of two parts that do not interleave in time concatenate into the points of the whole: that is what lets a
# night's events extend the history without reading every older event.

POINT_COLUMNS = ["user_id", "ts", "level"]


def _compress(user: np.ndarray, ts: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Positions to keep of points sorted by (user, ts): each period's first and each user's last."""
    n = len(user)
    if not n:
        return np.zeros(0, dtype=np.int64)
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = user[1:] != user[:-1]
    last_of_user = np.ones(n, dtype=bool)
    last_of_user[:-1] = new_user[1:]
    changed = np.ones(n, dtype=bool)
    changed[1:] = level[1:] != level[:-1]
    return np.flatnonzero(new_user | changed | last_of_user)


def _points_frame(user: np.ndarray, ts: np.ndarray, level: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.array(user, dtype="string[pyarrow]"),
            "ts": ts.astype("int64"),
            "level": pd.array(level, dtype="string[pyarrow]"),
        }
    )


def _by_user_then_time(user: np.ndarray, ts: np.ndarray, session: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Positions ordering rows by (user, ts, session, item).

    (user, ts) as one integer key, sorted once; only rows that share a key (events in the same millisecond:
    few) are then ordered by session and item: cheaper than a four-key lexsort."""
    n = len(user)
    lo, span = (int(ts.min()), int(ts.max()) - int(ts.min()) + 1) if n else (0, 1)
    if not n or (int(user.max()) + 1) * span >= 2**62:
        return np.lexsort((item, session, ts, user))
    key = user.astype(np.int64) * span + (ts - lo)
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    same = ordered[1:] == ordered[:-1]
    if same.any():
        tied = np.zeros(n, dtype=bool)
        tied[1:] |= same
        tied[:-1] |= same
        at = np.flatnonzero(tied)
        rows = order[at]
        # Tied rows form runs of one key each, already in key order: sorting them by key, session and item
        # reorders each run in place.
        order[at] = rows[np.lexsort((item[rows], session[rows], key[rows]))]
    return order


def level_points(events: pd.DataFrame) -> pd.DataFrame:
    """The points of each known user's level history, from deduplicated events of any page.

    Events in the same millisecond are simultaneous: the last by (sessionId, itemInSession) gives the level
    at that time, as it does for ``users``.
    """
    known = _known_user(events)
    if not known.any():
        return empty_points()
    user_codes, uniques = pd.factorize(events["userId"][known])
    ts = events["ts"].to_numpy("int64", na_value=-1)[known]
    session = events["sessionId"].to_numpy("int64", na_value=-1)[known]
    item = events["itemInSession"].to_numpy("int64", na_value=-1)[known]
    # Levels as codes (factorized in Arrow): not millions of Arrow strings turned into Python objects and back.
    level, levels = pd.factorize(events["level"][known])
    order = _by_user_then_time(user_codes, ts, session, item)
    user_codes, ts, level = user_codes[order], ts[order], level[order]
    last_at_ts = np.ones(len(ts), dtype=bool)
    last_at_ts[:-1] = (user_codes[1:] != user_codes[:-1]) | (ts[1:] != ts[:-1])
    user_codes, ts, level = user_codes[last_at_ts], ts[last_at_ts], level[last_at_ts]
    keep = _compress(user_codes, ts, level)
    names = np.asarray(levels, dtype=object)
    kept = level[keep]
    values = np.full(len(kept), None, dtype=object)
    known_level = kept >= 0
    values[known_level] = names[kept[known_level]]
    return _points_frame(np.asarray(uniques, dtype=object)[user_codes[keep]], ts[keep], values)


def empty_points() -> pd.DataFrame:
    return _points_frame(np.array([], dtype=object), np.array([], dtype="int64"), np.array([], dtype=object))


def _sorted_points(points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    df = points.sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True)
    user = pd.factorize(df["user_id"])[0]
    return user, df["ts"].to_numpy("int64"), pd.factorize(df["level"])[0], df


HOLE_COLUMNS = ["user_id", "from_ts", "to_ts"]


def empty_holes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.array([], dtype="string[pyarrow]"),
            "from_ts": np.array([], "int64"),
            "to_ts": np.array([], "int64"),
        }
    )


def union(*holes: pd.DataFrame) -> pd.DataFrame:
    """Holes as disjoint intervals per user: intervals that overlap or touch become one."""
    h = concat([x[HOLE_COLUMNS] for x in holes] or [empty_holes()])
    if h.empty:
        return empty_holes()
    h = h.astype({"user_id": "string[pyarrow]", "from_ts": "int64", "to_ts": "int64"})
    h = h.sort_values(["user_id", "from_ts", "to_ts"], kind="stable").reset_index(drop=True)
    reach = h.groupby("user_id")["to_ts"].cummax().groupby(h["user_id"]).shift()
    starts = (reach.isna() | (h["from_ts"] > reach)).to_numpy(bool)
    group = np.cumsum(starts)
    out = h.groupby(group, sort=True).agg(
        user_id=("user_id", "first"), from_ts=("from_ts", "min"), to_ts=("to_ts", "max")
    )
    return out.reset_index(drop=True).astype({"user_id": "string[pyarrow]", "from_ts": "int64", "to_ts": "int64"})


def _interval_of(frame: pd.DataFrame, intervals: pd.DataFrame, end: str = "to_ts") -> pd.DataFrame:
    """Rows of ``frame`` (user_id, ts) that fall in one of the users' intervals [from_ts, ``end``], with the
    interval's position in ``intervals`` as ``_interval`` and the row's position in ``frame`` as ``_row`` (a
    row on the edge of two intervals appears twice).

    Two binary searches per interval in the rows sorted by (user, ts), not a join of every row of a user to every
    interval of that user, which grows with their product."""
    if frame.empty or intervals.empty:
        return frame.iloc[:0].assign(_interval=np.zeros(0, dtype=np.int64), _row=np.zeros(0, dtype=np.int64))
    users = pd.concat([frame["user_id"], intervals["user_id"]], ignore_index=True).astype("string[pyarrow]")
    codes, _ = pd.factorize(users)
    row_user, interval_user = codes[: len(frame)].astype(np.int64), codes[len(frame) :].astype(np.int64)
    ts = frame["ts"].to_numpy("int64")
    lo_ts, hi_ts = int(ts.min()), int(ts.max())
    span = hi_ts - lo_ts + 1
    if (int(codes.max()) + 1) * span >= 2**62:  # (user, ts) would not fit one int64 key: join instead
        m = frame.assign(_row=np.arange(len(frame))).merge(
            intervals[["user_id", "from_ts", end]].assign(_interval=np.arange(len(intervals))), on="user_id"
        )
        return m.loc[(m["ts"] >= m["from_ts"]) & (m["ts"] <= m[end])].drop(columns=["from_ts", end])
    order = np.lexsort((ts, row_user))
    keys = row_user[order] * span + (ts[order] - lo_ts)
    start = np.clip(intervals["from_ts"].to_numpy("int64"), lo_ts, hi_ts + 1) - lo_ts
    stop = np.clip(intervals[end].to_numpy("int64"), lo_ts - 1, hi_ts) - lo_ts
    first = np.searchsorted(keys, interval_user * span + start, side="left")
    last = np.searchsorted(keys, interval_user * span + stop, side="right")
    counts = np.where(stop >= start, np.maximum(last - first, 0), 0)
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    positions = np.repeat(first, counts) + (np.arange(total) - np.repeat(offsets, counts))
    rows = order[positions]
    out = frame.iloc[rows].assign(_row=rows, _interval=np.repeat(np.arange(len(intervals)), counts))
    return out.reset_index(drop=True)


def _as_spans(holes: pd.DataFrame, part: np.ndarray) -> pd.DataFrame:
    return holes.rename(columns={"from_ts": "min", "to_ts": "max"}).assign(_part=part)


def combine_level_points(*parts: pd.DataFrame, holes: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the points of several parts of users' histories.

    Where, for a user, the parts do not interleave in time, their points simply concatenate. Where they do,
    points cannot say how the levels alternate, so the stretch where two parts overlap becomes a *hole*
    (``user_id, from_ts, to_ts``): outside holes the points stay exact, and a hole is filled later from the
    records in it (``fill_holes``). Holes already known are passed in and only grow; they belong to the first
    part (the points they were cut from). Users with a hole keep their points uncompressed until it is filled.

    A part's span is the stretch from its first event to its last, whatever holes later cut out of it: a part
    whose point inside a hole is dropped still holds events after the hole that continue that point's period,
    so its span must keep meeting any other part in that stretch.
    """
    frames = [p.assign(_part=n) for n, p in enumerate(parts) if len(p)]
    holes = union(empty_holes() if holes is None else holes)
    if not frames:
        return parts[0], holes
    df = concat(frames)
    spans = df.groupby(["user_id", "_part"], sort=False)["ts"].agg(["min", "max"]).reset_index()
    # The first part's own holes are part of its span (its points there were dropped when they were cut).
    owned = _as_spans(holes, np.zeros(len(holes), dtype=np.int64))
    spans = concat([spans, owned]).groupby(["user_id", "_part"], sort=False).agg({"min": "min", "max": "max"})
    spans = spans.reset_index()
    while True:
        gaps = _as_spans(holes, -1 - np.arange(len(holes)))
        spans_now = concat([spans, gaps])
        shared = spans_now.loc[spans_now["user_id"].duplicated(keep=False)]
        if shared.empty:
            break
        s = shared.sort_values(["user_id", "min"], kind="stable")
        # Sorted by start, a span overlaps the earlier ones where it starts before they have all ended.
        ended = s.groupby("user_id")["max"].cummax().groupby(s["user_id"]).shift()
        overlap = (s["min"] <= ended).fillna(False).to_numpy(bool)
        if not overlap.any():
            break
        found = pd.DataFrame(
            {
                "user_id": s["user_id"].to_numpy()[overlap],
                "from_ts": s["min"].to_numpy("int64")[overlap],
                "to_ts": np.minimum(
                    s["max"].to_numpy("int64")[overlap], ended.to_numpy("float64")[overlap].astype("int64")
                ),
            }
        )
        grown = union(holes, found)
        if grown.equals(holes):
            break
        holes = grown
    inside = _interval_of(df[["user_id", "ts"]], holes)["_row"].to_numpy()
    df = df.drop(index=df.index[np.unique(inside)]).drop(columns="_part")
    open_users = df["user_id"].isin(holes["user_id"])
    user, ts, level, closed = _sorted_points(df.loc[~open_users])
    kept = closed.iloc[_compress(user, ts, level)]
    return concat([kept, df.loc[open_users].sort_values(["user_id", "ts"])]).reset_index(drop=True), holes


def hole_windows(points: pd.DataFrame, holes: pd.DataFrame) -> pd.DataFrame:
    """What must be read to fill each hole: its records, and those at the first millisecond after it, which
    is no later than ``until_ts`` (the next point or hole of that user). Where a history leaves a hole the level
    may change although no point says so; reading that first millisecond settles it."""
    if holes.empty:
        return holes.assign(until_ts=np.zeros(0, dtype=np.int64))
    h = holes.sort_values(["user_id", "from_ts"]).reset_index(drop=True)
    next_hole = h.groupby("user_id")["from_ts"].shift(-1)
    pairs = points.merge(h[["user_id", "to_ts"]].assign(_h=np.arange(len(h))), on="user_id")
    after = pairs.loc[pairs["ts"] > pairs["to_ts"]].groupby("_h")["ts"].min()
    until = np.fmin(next_hole.to_numpy("float64"), after.reindex(np.arange(len(h))).to_numpy("float64"))
    until = np.where(np.isnan(until), h["to_ts"].to_numpy("float64"), until)
    return h.assign(until_ts=until.astype("int64"))


def window_points(windows: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The points of each window's stretch of history (computed apart: a window is a stretch on its own), and
    how far each window's read went: its hole and, when there is one, the first millisecond after it.

    ``events`` are the users' events in the windows ``hole_windows`` gives (any of them; a user's windows may
    be read in several goes)."""
    tagged = events.rename(columns={"userId": "user_id"})
    found = _interval_of(tagged[["user_id", "ts"]], windows, end="until_ts")
    rows = events.iloc[found["_row"].to_numpy()].assign(
        userId=found["user_id"].astype(str).to_numpy() + "\x1f" + found["_interval"].astype(str).to_numpy()
    )
    inner = level_points(rows)
    inner["user_id"] = inner["user_id"].str.split("\x1f").str[0].astype("string[pyarrow]")
    read_to = found.groupby("_interval")["ts"].max().reindex(np.arange(len(windows)))
    reach = windows[["user_id", "from_ts"]].assign(
        read_to=np.fmax(read_to.to_numpy("float64"), windows["to_ts"].to_numpy("float64")).astype("int64")
    )
    return inner, reach


def fill_holes(points: pd.DataFrame, filled: list[tuple[pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    """Splice the windows' points (``window_points``) into ``points``: what a window read replaces the points
    from its start to its last record, and every history is compressed again."""
    if not filled:
        return points
    reach = concat([r for _, r in filled])
    covered = _interval_of(points[["user_id", "ts"]], reach, end="read_to")["_row"].to_numpy()
    outside = points.iloc[np.setdiff1d(np.arange(len(points)), covered)]
    both = concat([outside, *(p for p, _ in filled)]).drop_duplicates(["user_id", "ts"], keep="last")
    user, ts, level, df = _sorted_points(both)
    return df.iloc[_compress(user, ts, level)].reset_index(drop=True)


def user_levels(points: pd.DataFrame) -> pd.DataFrame:
    """One row per period of each user's level: ``valid_from`` its first event, ``valid_to`` the next period's.

    Takes points (``level_points``) or any (user_id, ts, level) sequence without two rows of one user at one ts.
    """
    user, ts, level, df = _sorted_points(points)
    n = len(df)
    if not n:
        return _conform(
            pd.DataFrame(
                {
                    "user_id": pd.array([], dtype="string[pyarrow]"),
                    "level": pd.array([], dtype="string[pyarrow]"),
                    "valid_from": pd.Series([], dtype="datetime64[ns]"),
                    "valid_to": pd.Series([], dtype="datetime64[ns]"),
                }
            ),
            USER_LEVELS,
        )
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = user[1:] != user[:-1]
    starts = new_user.copy()
    starts[1:] |= level[1:] != level[:-1]
    rows = np.flatnonzero(starts)
    # The next period of the same user starts at the next start; the last period of a user is current.
    nxt = np.append(rows[1:], n)
    same_user = np.zeros(len(rows), dtype=bool)
    same_user[:-1] = ~new_user[rows[1:]]
    valid_to = pd.Series(pd.to_datetime(ts[np.minimum(nxt, n - 1)], unit="ms")).where(same_user)
    out = pd.DataFrame(
        {
            "user_id": df["user_id"].to_numpy()[rows],
            "level": df["level"].to_numpy()[rows],
            "valid_from": pd.to_datetime(ts[rows], unit="ms"),
            "valid_to": valid_to.to_numpy(),
        }
    )
    return _conform(out.astype({"user_id": "string[pyarrow]", "level": "string[pyarrow]"}), USER_LEVELS)


def stored_points(levels: pd.DataFrame, users_rows: pd.DataFrame) -> pd.DataFrame:
    """The points of histories already in the warehouse: each period's start, and each user's latest event."""
    starts = _points_frame(
        levels["user_id"].to_numpy(object), timestamp_to_ms(levels["valid_from"]), levels["level"].to_numpy(object)
    )
    last = _points_frame(
        users_rows["user_id"].to_numpy(object),
        timestamp_to_ms(users_rows["last_seen_at"]),
        users_rows["level"].to_numpy(object),
    )
    both = concat([starts, last]).drop_duplicates(["user_id", "ts"], keep="last")
    user, ts, level, df = _sorted_points(both)
    return df.iloc[_compress(user, ts, level)].reset_index(drop=True)


def stored_users(users_rows: pd.DataFrame) -> pd.DataFrame:
    """Users rows read back from the warehouse, as partials (the order key knows only the ts)."""
    out = _conform(users_rows, USERS).astype(
        {c: "string[pyarrow]" for c in ("user_id", "first_name", "last_name", "gender", "level")}
    )
    out["last_seen_at"] = pd.to_datetime(out["last_seen_at"]).astype("datetime64[ns]")
    out["_ts"] = timestamp_to_ms(out["last_seen_at"])
    out["_session"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["_item"] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out


# ------------------------------------------------------------------------------------------- songplays, time

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


def _songplays(events: pd.DataFrame, lookup: pd.DataFrame) -> pd.DataFrame:
    """Songplays from deduplicated events: each play matched exactly against the lookup."""
    df = plays(events).rename(columns={"song": "song_title", "artist": "artist_name", "length": "song_length"})
    # The lookup holds one row per key by construction (``song_lookup``); validating that again here would
    # cost as much as the join.
    df = df.merge(lookup, how="left", on=LOOKUP_KEY, sort=False)
    out = pd.DataFrame(
        {
            "songplay_id": songplay_ids(df["userId"], df["sessionId"], df["itemInSession"]),
            "start_time": _ms_to_timestamp(df["ts"]),
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
    return _conform(out, SONGPLAYS)


def songplays(events: pd.DataFrame, lookup: pd.DataFrame) -> pd.DataFrame:
    """One row per NextSong event with a userId; an event seen twice (in two files) is kept once."""
    return _songplays(dedupe_events(events), lookup)


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
    return _conform(out, TIME)


# ------------------------------------------------------------------------------------------- one batch


def to_records(frame: pd.DataFrame, spec: SourceSpec, urls: Sequence[str]) -> pd.DataFrame:
    """Parsed records as the warehouse keeps them (``schema.RECORDS``): snake_case, with file URL and line."""
    out = pd.DataFrame({column: frame[name] for name, column in spec.columns.items()}, index=frame.index)
    names = pa.array(list(urls), pa.string())
    out["file"] = pd.arrays.ArrowStringArray(names.take(pa.array(frame[FILE_COL].to_numpy(), pa.int32())))
    out["line"] = frame[LINE_COL].to_numpy("int32")
    return _conform(out, spec.records)


def records_frame(records: pd.DataFrame, spec: SourceSpec) -> tuple[pd.DataFrame, list[str]]:
    """Records read back from the warehouse as ``extract`` gives them: source names and types, ``_file`` (an
    index into the returned URLs) and ``_line``. A read of some columns gives those fields only."""
    out = pd.DataFrame({name: records[column] for name, column in spec.columns.items() if column in records})
    for f in spec.schema:
        if f.name not in out:
            continue
        if pa.types.is_string(f.type):
            out[f.name] = out[f.name].astype("string[pyarrow]")
        elif pa.types.is_integer(f.type):
            out[f.name] = out[f.name].astype("Int64")
        else:
            out[f.name] = out[f.name].astype("float64")
    if "file" not in records:
        return out.reset_index(drop=True), []
    codes, urls = pd.factorize(records["file"])
    out[FILE_COL] = codes.astype("int32")
    out[LINE_COL] = records["line"].to_numpy("int32")
    # Through tolist: iterating an Arrow-backed index boxes each value.
    return out.reset_index(drop=True), list(map(str, urls.tolist()))


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
    fact = _songplays(events, lookup)
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


# ------------------------------------------------------------------------------------------- in memory, whole


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
