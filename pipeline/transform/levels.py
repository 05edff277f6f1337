"""Events to ``user_levels``: the free/paid history as intervals, built from level points.

A batch yields points (the events where a user's level may change); points from batches that interleave in
time leave *holes*, windows whose events must be read again to decide the level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.core.schema import USER_LEVELS
from pipeline.transform.frames import concat, conform, timestamp_to_ms
from pipeline.transform.user_rows import known_user

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
    known = known_user(events)
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
        return conform(
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
    return conform(out.astype({"user_id": "string[pyarrow]", "level": "string[pyarrow]"}), USER_LEVELS)


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
