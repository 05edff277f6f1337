"""Inside the load: the final rows of every user and play a run touches.

A run's batches give partial results: each user's latest event and level-history points, and the plays of the
events it read. Most of the time they combine with what the warehouse holds by simple rules (a later event
wins; a night's history extends the stored one), and that costs reading back the stored rows of the users the
run touched, not their history. Where the simple rules cannot decide, rows are derived again, by the same
functions, from the kept records behind them (``_sparkify_event_records``):

- an event whose records change (its file is reloaded), meet a stored record from another file, or appear
  more than once in the run is *contested*: its play and its user are derived again from all their records;
- where a user's events of this run interleave in time with stored ones or with each other (a session that
  runs past midnight into the next day's file, a back-filled day overlapping loaded ones), level-history
  points cannot say how the levels alternate: that stretch of time is a *hole*, and only the records in it
  (and the first millisecond after it) are read, to fill it. Outside holes the points stay exact.

So whatever order files arrive in, and in whatever batches, every row ends as one run over every file would
make it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.core.schema import EVENT_KEYS, EVENT_RECORDS, REDERIVE, RUN_FILES, SONGPLAYS, USER_LEVELS, USERS
from pipeline.extract.repair import repair_events
from pipeline.extract.sources import LOG_SOURCE
from pipeline.load.base import Fixes, Reconcile, Workspace
from pipeline.transform import frames, levels, play_rows, user_rows

log = logging.getLogger(__name__)

EVERYTHING, LATEST = np.iinfo(np.int64).min, np.iinfo(np.int64).max


@dataclass
class RunPartials:
    """What a run's log batches add up to, before it meets the warehouse.

    Batches are set aside as they come and combined in one go when the result is read, or sooner once they hold
    ``FOLD_ROWS`` rows, so memory stays bounded. Combining each batch into the running total as it came reworked
    everything before it each time, on the thread the transforms need; in one go it is done once. What the
    combination leaves depends on the order and the grouping of the batches (which stretches become holes, which
    redundant points stay), but not the rows the load writes once the holes are filled from the records."""

    lookup: pd.DataFrame  # the catalogue's lookup after this run
    # Records read back at a time when rows are derived again (about a batch's worth), so memory stays bounded.
    chunk_records: int = 500_000
    # Whether the run reads again a file loaded before (its stored records are replaced): most nights, no.
    redelivered: bool = True
    # Rows of batches' partials held before they are combined (10M events' batches hold well under this).
    FOLD_ROWS: ClassVar[int] = 500_000
    _users: pd.DataFrame = field(default_factory=user_rows.empty_users_partial, init=False)
    _points: pd.DataFrame = field(default_factory=levels.empty_points, init=False)
    _holes: pd.DataFrame = field(default_factory=levels.empty_holes, init=False)
    _pending: list[tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=list, init=False)
    _pending_rows: int = field(default=0, init=False)

    def add(self, users: pd.DataFrame, points: pd.DataFrame) -> None:
        """Take one batch's partials (``transform.users_partial`` rows and level-history points), in any order."""
        self._pending.append((users, points))
        self._pending_rows += len(users) + len(points)
        if self._pending_rows > self.FOLD_ROWS:
            self._fold()

    def _fold(self) -> None:
        if not self._pending:
            return
        # Within a run every partial knows its event's session and item, so users always combine.
        self._users, _ = user_rows.combine_users(self._users, *(users for users, _ in self._pending))
        self._points, self._holes = levels.combine_level_points(
            self._points, *(points for _, points in self._pending), holes=self._holes
        )
        self._pending.clear()
        self._pending_rows = 0

    @property
    def users(self) -> pd.DataFrame:
        """Each user's row from their latest event in the run (``transform.users_partial``)."""
        self._fold()
        return self._users

    @property
    def level_points(self) -> pd.DataFrame:
        """The run's level-history points (``transform.combine_level_points``)."""
        self._fold()
        return self._points

    @property
    def holes(self) -> pd.DataFrame:
        """Stretches of users' histories where the run's batches interleave (``transform.combine_level_points``)."""
        self._fold()
        return self._holes


def _user_frame(ids: pd.Series | list[str] | set[str]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": pd.array(sorted({str(i) for i in ids}), dtype="string[pyarrow]")})


# What ``users`` and the level history read of an event; the rest matters only to contested events.
SLIM = [LOG_SOURCE.columns[f] for f in user_rows.HISTORY_FIELDS]


def _chunks(ws: Workspace, windows: pd.DataFrame, per_chunk: int, by_user: bool) -> list[pd.DataFrame]:
    """``windows`` in groups of at most about ``per_chunk`` records (a user's windows together if ``by_user``)."""
    staged, run_files = ws.relation(EVENT_RECORDS.name), ws.relation(RUN_FILES.name)
    windows = windows.reset_index(drop=True)
    counts = ws.frame(ws.dialect.record_counts(ws.schema, staged, run_files, ws.put(REDERIVE, windows, "rederive")))
    sizes = {
        (str(u), int(f)): int(n) for u, f, n in zip(counts["user_id"], counts["from_ts"], counts["n"], strict=True)
    }
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


def _read(ws: Workspace, windows: pd.DataFrame, n: int, columns: list[str] | None = None) -> pd.DataFrame:
    """Events of the users in ``windows``, in each one's window (deduplicated when all columns are read)."""
    staged, run_files = ws.relation(EVENT_RECORDS.name), ws.relation(RUN_FILES.name)
    who = ws.put(REDERIVE, windows, f"rederive_{n}")
    records = ws.frame(ws.dialect.records_in_windows(ws.schema, staged, run_files, who, columns))
    log.debug(
        "read %d kept records in %d windows of %d users", len(records), len(windows), windows["user_id"].nunique()
    )
    events = repair_events(frames.records_frame(records, LOG_SOURCE)[0])[0]
    return user_rows.dedupe_events(events) if columns is None else events


def _is_contested(events: pd.DataFrame, contested: pd.DataFrame) -> np.ndarray:
    keys = pd.MultiIndex.from_frame(contested.astype({"session_id": "int64", "item_in_session": "int64"}))
    mine = pd.MultiIndex.from_arrays(
        [events["userId"].astype(str), events["sessionId"].astype("int64"), events["itemInSession"].astype("int64")]
    )
    return np.asarray(mine.isin(keys))


def reconciler(partials: RunPartials) -> Reconcile:
    def reconcile(ws: Workspace) -> Fixes:
        d, schema = ws.dialect, ws.schema
        contested = ws.frame(
            d.contested_events(
                schema, ws.relation(EVENT_RECORDS.name), ws.relation(RUN_FILES.name), partials.redelivered
            )
        )
        contested.columns = EVENT_KEYS.column_names

        touched = ws.put(USERS.keys_table(), _user_frame(partials.users["user_id"]), "touched_users")
        stored_rows = ws.frame(d.rows_for_keys(schema, USERS, touched))
        stored = levels.stored_points(ws.frame(d.rows_for_keys(schema, USER_LEVELS, touched)), stored_rows)
        users, tied = user_rows.combine_users(user_rows.stored_users(stored_rows), partials.users)
        # The run's holes were cut from its own points: it goes first (see combine_level_points).
        points, holes = levels.combine_level_points(partials.level_points, stored, holes=partials.holes)
        # A run's latest event of a user in the same millisecond as the stored one: read that millisecond.
        at = user_rows.stored_users(stored_rows).set_index("user_id")["_ts"]
        ties = pd.DataFrame({"user_id": sorted(tied), "from_ts": [int(at[u]) for u in sorted(tied)]})
        holes = levels.union(holes, ties.assign(to_ts=ties["from_ts"]))

        whole = set(contested["user_id"].astype(str))
        if len(holes):
            # A hole is read column-light and not deduplicated: a user with any event held by two records
            # (settled on an earlier night) is read whole instead, every column, every record.
            who = ws.put(USERS.keys_table(), _user_frame(holes["user_id"]), "hole_users")
            twins = ws.frame(
                d.users_with_duplicates(schema, ws.relation(EVENT_RECORDS.name), ws.relation(RUN_FILES.name), who)
            )
            whole |= set(twins["user_id"].astype(str))
        everything = pd.DataFrame(
            {"user_id": pd.array(sorted(whole), dtype="string[pyarrow]"), "from_ts": EVERYTHING, "to_ts": LATEST}
        )
        windows = frames.concat(
            [
                levels.hole_windows(points, holes.loc[~holes["user_id"].isin(whole)]),
                everything.assign(until_ts=LATEST),
            ]
        )
        plays = frames.empty(SONGPLAYS)
        if len(windows):
            redone_users, redone_points, redone_plays = [], [], []
            n = 0
            # Contested users: every record, every column (duplicates are decided on all of them).
            for chunk in _chunks(ws, windows.loc[windows["user_id"].isin(whole)], partials.chunk_records, True):
                events = _read(ws, chunk, n)
                n += 1
                redone_users.append(user_rows.users_partial(events))
                redone_points.append(levels.level_points(events))
                redone_plays.append(
                    play_rows.songplays_of_deduped(events.loc[_is_contested(events, contested)], partials.lookup)
                )
            # Holes: only their stretches, window by window, and only what users and levels read.
            gaps = windows.loc[~windows["user_id"].isin(whole)]
            filled = []
            for chunk in _chunks(ws, gaps, partials.chunk_records, False):
                events = _read(ws, chunk, n, SLIM)
                n += 1
                filled.append(levels.window_points(chunk.reset_index(drop=True), events))
                redone_users.append(user_rows.users_partial(events.loc[events["userId"].isin(tied)]))
            open_users = set(gaps["user_id"].astype(str))
            redone_points.append(
                levels.fill_holes(points.loc[points["user_id"].isin(open_users)].reset_index(drop=True), filled)
            )
            again = set(windows["user_id"].astype(str))
            # A tied user's windows may have been read in several chunks: their latest event wins.
            users, _ = user_rows.combine_users(_without(users, whole | tied), *redone_users)
            points = frames.concat([_without(points, again), *redone_points])
            plays = frames.concat([plays, *redone_plays])
            log.info(
                "derived again from kept records: %d contested events (%d users whole); %d stretches of %d users' "
                "histories where their events interleave",
                len(contested),
                len(whole),
                len(gaps),
                len(open_users),
            )
        return Fixes(
            users=user_rows.finish_users(users),
            user_keys=_user_frame(set(partials.users["user_id"].astype(str)) | set(windows["user_id"].astype(str))),
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

    return reconcile


def _without(frame: pd.DataFrame, users: set[str]) -> pd.DataFrame:
    return frame.loc[~frame["user_id"].isin(users)] if users else frame
