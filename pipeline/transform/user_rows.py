"""Events to ``users`` rows: each user's latest event decides the row, by the data's order, never arrival.

A batch yields a partial (its latest event per user, with that event's order key); ``combine_users`` folds
partials and names the users whose rows tie and must be derived again from all their records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.core.schema import USERS
from pipeline.extract.sources import LOG_SOURCE
from pipeline.transform.frames import (
    EVENT_KEY,
    EVENT_ORDER,
    conform,
    empty,
    greatest,
    ms_to_timestamp,
    records_frame,
    timestamp_to_ms,
)

# What ``users_partial`` and ``level_points`` read of an event.
HISTORY_FIELDS = ["userId", "sessionId", "itemInSession", "ts", "level", "firstName", "lastName", "gender"]


# A partial users row carries the order key of the event it came from, so two partials can be compared.
# Rows read back from the warehouse know only ts: their session and item are null.
USER_ORDER = ["_ts", "_session", "_item"]


def dedupe_events(events: pd.DataFrame) -> pd.DataFrame:
    """One record per event (natural key), the greatest by ``EVENT_ORDER``: the same event in two files is one."""
    return greatest(events, EVENT_KEY, EVENT_ORDER)


def known_user(events: pd.DataFrame) -> np.ndarray:
    return (events["userId"] != "").to_numpy(bool, na_value=False)


def _latest_per_user(events: pd.DataFrame) -> np.ndarray:
    """Row positions of each known user's latest event by (ts, sessionId, itemInSession), in row order.

    On deduplicated events the three are unique per user, so this is a total order. Hash aggregation finds
    each user's latest ts; only the rows at that ts (usually one per user) are sorted to break ties. Sorting
    every event by four keys was 6x slower on a 666k-event batch.
    """
    known = known_user(events)
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
            "last_seen_at": ms_to_timestamp(df["ts"]).to_numpy(),
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
    return conform(partial.sort_values("user_id"), USERS)


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


def stored_users(users_rows: pd.DataFrame) -> pd.DataFrame:
    """Users rows read back from the warehouse, as partials (the order key knows only the ts)."""
    out = conform(users_rows, USERS).astype(
        {c: "string[pyarrow]" for c in ("user_id", "first_name", "last_name", "gender", "level")}
    )
    out["last_seen_at"] = pd.to_datetime(out["last_seen_at"]).astype("datetime64[ns]")
    out["_ts"] = timestamp_to_ms(out["last_seen_at"])
    out["_session"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["_item"] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out
