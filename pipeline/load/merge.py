"""The star-specific merge: what a run staged and what reconciliation fixed, into the star, by key."""

from __future__ import annotations

import logging

from pipeline.checks.base import Scope, Written
from pipeline.core.schema import (
    ARTISTS,
    LOADED_FILES,
    LOOKUP_CHANGES,
    RECORDS,
    RUN_FILES,
    SONG_LOOKUP,
    SONGPLAYS,
    SONGS,
    TIME,
    USER_LEVELS,
    USERS,
    fixed,
)
from pipeline.core.sql import quote
from pipeline.load.session import Session
from pipeline.load.staged import Staged
from pipeline.load.workspace import Fixes, LoadResult, Workspace
from pipeline.ops import faults

log = logging.getLogger(__name__)


def merge_star(s: Session, ws: Workspace, staged: Staged, fixes: Fixes, result: LoadResult) -> Scope:
    """The star's merge inside the load's transaction: the kept records, the catalogue, users and their levels,
    plays and times, then the ledger; each by DELETE and INSERT of the keys the run touched. Returns what it
    wrote and deleted, for the checks confined to it."""
    d, schema, rel = ws.dialect, ws.schema, ws.relations
    rows = {name: st.rows for name, st in staged.tables.items()}
    written: dict[str, list[Written]] = {}
    deleted: dict[str, list[str]] = {}

    def wrote(table: str, relation: str, columns: list[str]) -> None:
        written.setdefault(table, []).append(Written(relation, tuple(columns)))

    def step(name: str) -> None:
        log.debug("merged %s", name)
        faults.checkpoint(f"merged-{name}")

    # The records the star is derived from: a reloaded file's records replace its old ones.
    for table in RECORDS:
        if table.name in rel:
            s.execute(d.delete_keys(schema, table, rel[RUN_FILES.name]))
            s.execute(d.insert(schema, table, rel[table.name]))
            result.rows_merged[table.name] = rows[table.name]
    step("records")
    # The catalogue: rows that changed, and songs or artists no song file holds any more.
    for table in (ARTISTS, SONGS):
        if table.name in rel:
            for keys in (rel[table.name], rel[table.keys_table().name]):
                s.execute(d.delete_keys(schema, table, keys))
                deleted.setdefault(table.name, []).append(keys)
            s.execute(d.insert(schema, table, rel[table.name]))
            wrote(table.name, rel[table.name], table.column_names)
            result.rows_merged[table.name] = rows[table.name]
        step(table.name)
    # The stored lookup: whole where the run derived it whole (a warehouse from before it was kept), else by the keys
    # whose song changed.
    if rows.get(SONG_LOOKUP.name):
        s.execute(f"DELETE FROM {d.qualified(schema, SONG_LOOKUP.name)}")
        s.execute(d.insert(schema, SONG_LOOKUP, rel[SONG_LOOKUP.name]))
    elif LOOKUP_CHANGES.name in rel and rows.get(LOOKUP_CHANGES.name):
        s.execute(d.delete_keys(schema, SONG_LOOKUP, rel[LOOKUP_CHANGES.name]))
        s.execute(d.insert(schema, SONG_LOOKUP, rel[LOOKUP_CHANGES.name], ' WHERE "song_id" IS NOT NULL'))
    step(SONG_LOOKUP.name)
    # Users and their level history: every row of each user the run touched, as reconciliation decided.
    user_keys = ws.put(USERS.keys_table(), fixes.user_keys, fixed("user_keys"))
    for table, frame in ((USERS, fixes.users), (USER_LEVELS, fixes.user_levels)):
        s.execute(d.delete_keys(schema, table, user_keys))
        deleted[table.name] = [user_keys]
        s.execute(d.insert(schema, table, ws.put(table, frame, fixed(table.name))))
        wrote(table.name, quote(fixed(table.name)), table.column_names)
        result.rows_merged[table.name] = len(frame)
        step(table.name)
    # Plays: new ones as staged; contested ones (an event in two files, a reloaded file) as derived again.
    play_keys = ws.put(SONGPLAYS.keys_table(), fixes.songplay_keys, fixed("songplay_keys"))
    s.execute(d.start_times_of(schema, play_keys, "gone_times", rel.get(SONGPLAYS.name)))
    s.execute(d.delete_keys(schema, SONGPLAYS, play_keys))
    # Stored plays meet the grown catalogue before this run's plays join them: those were matched with the
    # new lookup already, so on a first load (10M events) this updates nothing instead of every play.
    deleted[SONGPLAYS.name] = [play_keys]
    if LOOKUP_CHANGES.name in rel and rows.get(LOOKUP_CHANGES.name):
        s.execute(d.rematch(schema, rel[LOOKUP_CHANGES.name]))
        # The plays it matches again take their song and artist from the changes.
        wrote(SONGPLAYS.name, rel[LOOKUP_CHANGES.name], LOOKUP_CHANGES.column_names)
    if SONGPLAYS.name in rel:
        uncontested = f' WHERE "songplay_id" NOT IN (SELECT "songplay_id" FROM {play_keys})'
        s.execute(d.insert(schema, SONGPLAYS, rel[SONGPLAYS.name], uncontested))
        wrote(SONGPLAYS.name, f"(SELECT * FROM {rel[SONGPLAYS.name]}{uncontested})", SONGPLAYS.column_names)
    s.execute(d.insert(schema, SONGPLAYS, ws.put(SONGPLAYS, fixes.songplays, fixed(SONGPLAYS.name))))
    wrote(SONGPLAYS.name, quote(fixed(SONGPLAYS.name)), SONGPLAYS.column_names)
    result.rows_merged[SONGPLAYS.name] = rows.get(SONGPLAYS.name, 0) + len(fixes.songplays)
    step(SONGPLAYS.name)
    # Time follows the plays: a row per start time some play has.
    if TIME.name in rel:
        s.execute(d.insert_missing(schema, TIME, rel[TIME.name]))
        wrote(TIME.name, rel[TIME.name], TIME.column_names)
    s.execute(d.insert_missing(schema, TIME, ws.put(TIME, fixes.time, fixed(TIME.name))))
    wrote(TIME.name, quote(fixed(TIME.name)), TIME.column_names)
    s.execute(d.delete_orphan_times(schema, quote("gone_times")))
    deleted[TIME.name] = [quote("gone_times")]
    result.rows_merged[TIME.name] = rows.get(TIME.name, 0) + len(fixes.time)
    step(TIME.name)
    if LOADED_FILES.name in rel:
        s.execute(d.delete_keys(schema, LOADED_FILES, rel[LOADED_FILES.name]))
        s.execute(d.insert(schema, LOADED_FILES, rel[LOADED_FILES.name]))
        result.rows_merged[LOADED_FILES.name] = rows[LOADED_FILES.name]
    return Scope(written, deleted)
