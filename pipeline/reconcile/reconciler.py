"""The load's reconciliation callback: reads what ``plan`` asks for through the load's workspace, in bounded
chunks, and returns the rows ``plan`` derives from it."""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.core.schema import EVENT_KEYS, EVENT_RECORDS, REDERIVE, RUN_FILES, USER_LEVELS, USERS
from pipeline.extract.repair import repair_events
from pipeline.extract.sources import LOG_SOURCE
from pipeline.load.workspace import Fixes, Reconcile, Workspace
from pipeline.reconcile import plan, queries
from pipeline.reconcile.partials import RunPartials
from pipeline.transform import frames, user_rows

log = logging.getLogger(__name__)

# What ``users`` and the level history read of an event; the rest matters only to contested events.
SLIM = [LOG_SOURCE.columns[f] for f in user_rows.HISTORY_FIELDS]


def _records(ws: Workspace) -> tuple[str, str]:
    return ws.relation(EVENT_RECORDS.name), ws.relation(RUN_FILES.name)


def _chunks(ws: Workspace, windows: pd.DataFrame, per_chunk: int, by_user: bool) -> list[pd.DataFrame]:
    """``windows`` in groups of at most about ``per_chunk`` records, counted in the warehouse."""
    windows = windows.reset_index(drop=True)
    rederive = ws.put(REDERIVE, windows, "rederive")
    counts = ws.frame(queries.record_counts(ws.dialect, ws.schema, *_records(ws), rederive))
    sizes = {
        (str(u), int(f)): int(n) for u, f, n in zip(counts["user_id"], counts["from_ts"], counts["n"], strict=True)
    }
    return plan.chunked(windows, sizes, per_chunk, by_user)


def _read(ws: Workspace, windows: pd.DataFrame, n: int, columns: list[str] | None = None) -> pd.DataFrame:
    """Events of the users in ``windows``, in each one's window (deduplicated when all columns are read)."""
    who = ws.put(REDERIVE, windows, f"rederive_{n}")
    records = ws.frame(queries.records_in_windows(ws.dialect, ws.schema, *_records(ws), who, columns))
    log.debug(
        "read %d kept records in %d windows of %d users", len(records), len(windows), windows["user_id"].nunique()
    )
    events = repair_events(frames.records_frame(records, LOG_SOURCE)[0])[0]
    return user_rows.dedupe_events(events) if columns is None else events


def _whole_users(ws: Workspace, contested: pd.DataFrame, combined: plan.Combined) -> set[str]:
    """Users read whole: those with a contested event, and those with an event in a hole's window held in two
    records (settled on an earlier night): a hole is read column-light and not deduplicated."""
    whole = set(contested["user_id"].astype(str))
    holes = plan.windows_to_read(combined.points, combined.holes, whole)
    holes = holes.loc[~holes["user_id"].isin(whole)]  # the contested are read whole already
    if len(holes):
        windows = ws.put(REDERIVE, holes.reset_index(drop=True), "hole_windows")
        twins = ws.frame(queries.users_with_duplicates(ws.dialect, ws.schema, *_records(ws), windows))
        whole |= set(twins["user_id"].astype(str))
    return whole


def reconciler(partials: RunPartials) -> Reconcile:
    def reconcile(ws: Workspace) -> Fixes:
        d, schema = ws.dialect, ws.schema
        contested = ws.frame(queries.contested_events(d, schema, *_records(ws), partials.redelivered))
        contested.columns = EVENT_KEYS.column_names
        touched = ws.put(USERS.keys_table(), plan.user_frame(partials.users["user_id"]), "touched_users")
        combined = plan.combine_with_stored(
            partials.users,
            partials.level_points,
            partials.holes,
            ws.frame(queries.rows_for_keys(d, schema, USERS, touched)),
            ws.frame(queries.rows_for_keys(d, schema, USER_LEVELS, touched)),
        )
        whole = _whole_users(ws, contested, combined)
        windows = plan.windows_to_read(combined.points, combined.holes, whole)
        redone = plan.Rederived()
        if len(windows):
            n = 0
            # Contested users: every record, every column (duplicates are decided on all of them).
            for chunk in _chunks(ws, windows.loc[windows["user_id"].isin(whole)], partials.chunk_records, True):
                redone.add_whole(_read(ws, chunk, n), contested, partials.lookup)
                n += 1
            # Holes: only their stretches, window by window, and only what users and levels read.
            gaps = windows.loc[~windows["user_id"].isin(whole)]
            for chunk in _chunks(ws, gaps, partials.chunk_records, False):
                redone.add_windows(chunk, _read(ws, chunk, n, SLIM), combined.tied)
                n += 1
            log.info(
                "derived again from kept records: %d contested events (%d users whole); %d stretches of %d users' "
                "histories where their events interleave",
                len(contested),
                len(whole),
                len(gaps),
                gaps["user_id"].nunique(),
            )
        return plan.fixes(partials.users, combined, whole, windows, contested, redone)

    return reconcile
