"""Reconciliation's decisions, as functions of frames: no warehouse, so each one is unit-tested on its own.

``reconciler`` reads what they ask for (stored rows, contested keys, records in windows) and hands it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.core.schema import SONGPLAYS
from pipeline.load.workspace import Fixes
from pipeline.transform import frames, levels, play_rows, user_rows

EVERYTHING, LATEST = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def user_frame(ids: pd.Series | list[str] | set[str]) -> pd.DataFrame:
    """Users as a one-column key frame (``USERS.keys_table()``), sorted, each once."""
    return pd.DataFrame({"user_id": pd.array(sorted({str(i) for i in ids}), dtype="string[pyarrow]")})


@dataclass
class Combined:
    """The run's partials combined with the stored rows of the users it touched."""

    users: pd.DataFrame  # partial users rows (``user_rows.users_partial``)
    tied: set[str]  # users whose stored and new latest events share a millisecond: read that millisecond
    points: pd.DataFrame
    holes: pd.DataFrame


def combine_with_stored(
    run_users: pd.DataFrame,
    run_points: pd.DataFrame,
    run_holes: pd.DataFrame,
    stored_users: pd.DataFrame,
    stored_levels: pd.DataFrame,
) -> Combined:
    """The run's users and level points over the stored ``users`` and ``user_levels`` rows of the same users."""
    stored = user_rows.stored_users(stored_users)
    users, tied = user_rows.combine_users(stored, run_users)
    # The run's holes were cut from its own points: it goes first (see combine_level_points).
    points, holes = levels.combine_level_points(
        run_points, levels.stored_points(stored_levels, stored_users), holes=run_holes
    )
    at = stored.set_index("user_id")["_ts"]
    ties = pd.DataFrame({"user_id": sorted(tied), "from_ts": [int(at[u]) for u in sorted(tied)]})
    return Combined(users, tied, points, levels.union(holes, ties.assign(to_ts=ties["from_ts"])))


def windows_to_read(points: pd.DataFrame, holes: pd.DataFrame, whole: set[str]) -> pd.DataFrame:
    """The windows of records to read again (``schema.REDERIVE``): all of a ``whole`` user's history, and for
    everyone else the stretches of their holes (with the first millisecond after each)."""
    everything = pd.DataFrame(
        {"user_id": pd.array(sorted(whole), dtype="string[pyarrow]"), "from_ts": EVERYTHING, "to_ts": LATEST}
    )
    return frames.concat(
        [levels.hole_windows(points, holes.loc[~holes["user_id"].isin(whole)]), everything.assign(until_ts=LATEST)]
    )


def chunked(
    windows: pd.DataFrame, sizes: Mapping[tuple[str, int], int], per_chunk: int, by_user: bool
) -> list[pd.DataFrame]:
    """``windows`` in groups of at most about ``per_chunk`` records, by each window's count in ``sizes`` (keyed
    by user and ``from_ts``); a user's windows stay together if ``by_user``. A window larger than ``per_chunk``
    is a group of its own."""
    windows = windows.reset_index(drop=True)
    units = (
        list(windows.groupby("user_id", sort=True).groups.values()) if by_user else [[i] for i in range(len(windows))]
    )
    groups: list[list[int]] = [[]]
    total = 0
    for rows in units:
        n = sum(sizes.get((str(windows["user_id"].iloc[i]), int(windows["from_ts"].iloc[i])), 0) for i in rows)
        if groups[-1] and total + n > per_chunk:
            groups.append([])
            total = 0
        groups[-1].extend(int(i) for i in rows)
        total += n
    return [windows.iloc[g] for g in groups if g]


def is_contested(events: pd.DataFrame, contested: pd.DataFrame) -> np.ndarray:
    """Which of ``events`` (source field names) have a key in ``contested`` (``EVENT_KEYS`` columns)."""
    keys = pd.MultiIndex.from_frame(contested.astype({"session_id": "int64", "item_in_session": "int64"}))
    mine = pd.MultiIndex.from_arrays(
        [events["userId"].astype(str), events["sessionId"].astype("int64"), events["itemInSession"].astype("int64")]
    )
    return np.asarray(mine.isin(keys))


@dataclass
class Rederived:
    """Rows derived again from records read back, chunk by chunk."""

    users: list[pd.DataFrame] = field(default_factory=list)
    points: list[pd.DataFrame] = field(default_factory=list)
    plays: list[pd.DataFrame] = field(default_factory=list)
    # Per hole chunk: its windows and the points the records in them give.
    filled: list[tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=list)

    def add_whole(self, events: pd.DataFrame, contested: pd.DataFrame, lookup: pd.DataFrame) -> None:
        """Every record of some whole users (deduplicated): their users row, their history, and the plays of
        their contested events (the others' rows are as staged)."""
        self.users.append(user_rows.users_partial(events))
        self.points.append(levels.level_points(events))
        self.plays.append(play_rows.songplays_of_deduped(events.loc[is_contested(events, contested)], lookup))

    def add_windows(self, windows: pd.DataFrame, events: pd.DataFrame, tied: set[str]) -> None:
        """The records in some holes' windows (the columns history reads): the points that fill them, and the
        latest event of a tied user."""
        self.filled.append(levels.window_points(windows.reset_index(drop=True), events))
        self.users.append(user_rows.users_partial(events.loc[events["userId"].isin(tied)]))


def fixes(
    run_users: pd.DataFrame,
    combined: Combined,
    whole: set[str],
    windows: pd.DataFrame,
    contested: pd.DataFrame,
    redone: Rederived,
) -> Fixes:
    """The rows the load writes beyond the staged ones: every touched user's row and history, and the plays of
    contested events."""
    users, points = combined.users, combined.points
    plays = frames.empty(SONGPLAYS)
    if len(windows):
        gaps = windows.loc[~windows["user_id"].isin(whole)]
        open_users = set(gaps["user_id"].astype(str))
        fill = levels.fill_holes(points.loc[points["user_id"].isin(open_users)].reset_index(drop=True), redone.filled)
        again = set(windows["user_id"].astype(str))
        # A tied user's windows may have been read in several chunks: their latest event wins.
        users, _ = user_rows.combine_users(_without(users, whole | combined.tied), *redone.users)
        points = frames.concat([_without(points, again), *redone.points, fill])
        plays = frames.concat([plays, *redone.plays])
    return Fixes(
        users=user_rows.finish_users(users),
        user_keys=user_frame(set(run_users["user_id"].astype(str)) | set(windows["user_id"].astype(str))),
        user_levels=levels.user_levels(points),
        songplays=plays,
        songplay_keys=pd.DataFrame(
            {
                "songplay_id": play_rows.songplay_ids(
                    contested["user_id"].astype("string[pyarrow]"),
                    contested["session_id"],
                    contested["item_in_session"],
                )
            }
        ),
        time=play_rows.time(plays),
        stats={
            "contested_events": len(contested),
            "users_whole": len(whole),
            "users_windows": len(set(windows["user_id"].astype(str)) - whole),
        },
    )


def _without(frame: pd.DataFrame, users: set[str]) -> pd.DataFrame:
    return frame.loc[~frame["user_id"].isin(users)] if users else frame
