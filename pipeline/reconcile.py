"""Inside the load: the final rows of every user and play a run touches.

A run's batches give partial results: each user's latest event and level-history points, and the plays of the
events it read. Most of the time they combine with what the warehouse holds by simple rules (a later event
wins; a night's history extends the stored one), and that costs reading back the stored rows of the users the
run touched, not their history. Where the simple rules cannot decide, rows are derived again, by the same
functions, from the kept records behind them (``_sparkify_event_records``):

- an event whose records change (its file is reloaded), meet a stored record from another file, or appear
  more than once in the run is *contested*: its play and its user are derived again from all their records;
- a user whose events of this run interleave in time with stored ones or with each other (a session that runs
  past midnight into the next day's file, a back-filled day between loaded ones) has the *tail* of their
  history derived again: the records from the run's first event of that user on, spliced onto the stored
  periods before it. Nothing before that point can change, so nothing before it is read.

So whatever order files arrive in, and in whatever batches, every row ends as one run over every file would
make it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import transform as T
from .load.base import Fixes, Reconcile, Workspace
from .schema import EVENT_KEYS, EVENT_RECORDS, REDERIVE, RUN_FILES, SONGPLAYS, USER_LEVELS, USERS
from .sources import LOG_SOURCE

log = logging.getLogger(__name__)

EVERYTHING = np.iinfo(np.int64).min


@dataclass
class RunPartials:
    """What a run's log batches add up to, before it meets the warehouse."""

    users: pd.DataFrame  # ``transform.users_partial`` rows, combined over the batches
    level_points: pd.DataFrame
    lookup: pd.DataFrame  # the catalogue's lookup after this run
    # Users whose batches could not be combined (their parts interleave in time).
    conflicts: set[str] = field(default_factory=set)
    # Each user's first event in this run (ts): where a derivation of their tail starts.
    first_ts: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    # Records derived again in one go (about a batch's worth), so memory stays bounded.
    chunk_records: int = 500_000

    def add(self, users: pd.DataFrame, points: pd.DataFrame) -> None:
        """Fold one batch in (in any order: the combination does not depend on it)."""
        self.users, c1 = T.combine_users(self.users, users)
        self.level_points, c2 = T.combine_level_points(self.level_points, points)
        self.conflicts |= c1 | c2
        # A user's first point is their first event of the batch.
        first = points.groupby("user_id", sort=False)["ts"].min()
        both = pd.concat([self.first_ts, first]) if len(self.first_ts) else first
        self.first_ts = both.groupby(level=0).min()


def _user_frame(ids: pd.Series | list[str] | set[str]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": pd.array(sorted({str(i) for i in ids}), dtype="string[pyarrow]")})


def _without(frame: pd.DataFrame, users: set[str]) -> pd.DataFrame:
    return frame.loc[~frame["user_id"].isin(users)] if users else frame


def _chunks(ws: Workspace, start: pd.DataFrame, per_chunk: int) -> list[pd.DataFrame]:
    """The users to derive again, in groups of at most about ``per_chunk`` records."""
    staged, run_files = ws.relation(EVENT_RECORDS.name), ws.relation(RUN_FILES.name)
    counts = ws.frame(ws.dialect.record_counts(ws.schema, staged, run_files, ws.put(REDERIVE, start, "rederive")))
    sizes = dict(zip(counts["user_id"].astype(str), counts["n"].astype(int), strict=True))
    groups: list[list[int]] = [[]]
    total = 0
    for i, user in enumerate(start["user_id"].astype(str)):
        n = sizes.get(user, 0)
        if groups[-1] and total + n > per_chunk:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += n
    return [start.iloc[g] for g in groups if g]


def _derive(
    ws: Workspace, chunk: pd.DataFrame, n: int, contested: pd.DataFrame, lookup: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Users rows, level points (of the tail read) and contested plays of the users in ``chunk``."""
    staged, run_files = ws.relation(EVENT_RECORDS.name), ws.relation(RUN_FILES.name)
    who = ws.put(REDERIVE, chunk, f"rederive_{n}")
    records = ws.frame(ws.dialect.records_of_users(ws.schema, staged, run_files, who))
    events = T.dedupe_events(T.records_frame(records, LOG_SOURCE)[0])
    del records
    keys = pd.MultiIndex.from_frame(contested.astype({"session_id": "int64", "item_in_session": "int64"}))
    mine = pd.MultiIndex.from_arrays(
        [events["userId"].astype(str), events["sessionId"].astype("int64"), events["itemInSession"].astype("int64")]
    ).isin(keys)
    return T.users_partial(events), T.level_points(events), T._songplays(events.loc[mine], lookup)


def reconciler(partials: RunPartials) -> Reconcile:
    def reconcile(ws: Workspace) -> Fixes:
        d, schema = ws.dialect, ws.schema
        contested = ws.frame(d.contested_events(schema, ws.relation(EVENT_RECORDS.name), ws.relation(RUN_FILES.name)))
        contested.columns = EVENT_KEYS.column_names

        touched = ws.put(USERS.keys_table(), _user_frame(partials.users["user_id"]), "touched_users")
        stored_rows = ws.frame(d.rows_for_keys(schema, USERS, touched))
        stored = T.stored_points(ws.frame(d.rows_for_keys(schema, USER_LEVELS, touched)), stored_rows)
        users, c1 = T.combine_users(T.stored_users(stored_rows), partials.users)
        points, c2 = T.combine_level_points(stored, partials.level_points)

        whole = set(contested["user_id"].astype(str))
        tail = (partials.conflicts | c1 | c2) - whole
        again = whole | tail
        plays = T.empty(SONGPLAYS)
        if again:
            start = pd.DataFrame(
                {
                    "user_id": pd.array(sorted(again), dtype="string[pyarrow]"),
                    "from_ts": [EVERYTHING if u in whole else int(partials.first_ts[u]) for u in sorted(again)],
                }
            )
            derived = [
                _derive(ws, chunk, n, contested, partials.lookup)
                for n, chunk in enumerate(_chunks(ws, start, partials.chunk_records))
            ]
            # The stored history before each tail is kept as it is; the tail's points continue it.
            before = stored.loc[stored["user_id"].isin(tail)]
            before = before.loc[before["ts"] < before["user_id"].map(start.set_index("user_id")["from_ts"])]
            spliced, clash = T.combine_level_points(before, T.concat([p for _, p, _ in derived]))
            assert not clash, f"a tail overlaps the history before it: {sorted(clash)[:5]}"
            users = T.concat([_without(users, again), *(u for u, _, _ in derived)])
            points = T.concat([_without(points, again), spliced])
            plays = T.concat([plays, *(p for _, _, p in derived)])
            log.info(
                "derived again from kept records: %d contested events; %d users in whole, %d from their first "
                "event of this run",
                len(contested),
                len(whole),
                len(tail),
            )
        return Fixes(
            users=T.finish_users(users),
            user_keys=_user_frame(set(partials.users["user_id"].astype(str)) | again),
            user_levels=T.user_levels(points),
            songplays=plays,
            songplay_keys=pd.DataFrame(
                {
                    "songplay_id": T.songplay_ids(
                        contested["user_id"].astype("string[pyarrow]"),
                        contested["session_id"],
                        contested["item_in_session"],
                    )
                }
            ),
            time=T.time(plays),
            stats={"contested_events": len(contested), "users_whole": len(whole), "users_tail": len(tail)},
        )

    return reconcile
