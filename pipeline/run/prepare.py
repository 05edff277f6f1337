"""A run's preparation: what it reads from the warehouse before its batches (the schema check, the ledger, the
stored catalogue), the sources listed, the shrink guard set, and the logs' batches begun meanwhile."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.core.schema import EVENT_RECORDS, SONG_RECORDS
from pipeline.demo.dataset import ensure_demo_data
from pipeline.extract.discover import SourceFile
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from pipeline.load import stage as staging
from pipeline.run.context import RunContext
from pipeline.run.engine import Engine, Outcomes
from pipeline.run.redelivery import ShrinkGuard, held_by_size
from pipeline.transform import frames

log = logging.getLogger(__name__)


@dataclass
class Listed:
    """What the run's preparation found: the files to read, those gone from the source, the logs' outcomes (begun),
    and the stored catalogue."""

    log_files: list[SourceFile]
    log_gone: list[str]
    log_outcomes: Outcomes
    song_fs: Any
    song_files: list[SourceFile]
    song_gone: list[str]
    song_guard: ShrinkGuard | None
    # Every song record (a run that reads song files, or whose lookup was never kept), or none.
    stored_songs: pd.DataFrame
    # The lookup as the last load left it, where the run reads no song file; whether the warehouse keeps one.
    stored_lookup: pd.DataFrame | None
    lookup_built: bool
    # Files of this run loaded before: only they can replace stored records.
    redelivered: set[str]


def prepare(ctx: RunContext, engine: Engine, stager: staging.Stager, lookup: Future[pd.DataFrame]) -> Listed:
    """What the run reads from the warehouse before the load, on one connection closed before the batches (a
    DuckDB file is held by one process at a time, and readers can use it until the load); the logs' batches
    start meanwhile."""
    cfg, full = ctx.cfg, ctx.options.full_refresh
    with ctx.timed("prepare"), ctx.dest.pinned():
        ensure_demo_data(cfg)
        # A connection of its own since the bookkeeping's closed: retried like that one (a notebook may hold
        # the file in between).
        ctx.retry("checking the schema", ctx.dest.check_schema)
        ledger = ctx.retry("reading the ledger", ctx.dest.loaded_files)
        ctx.ledger = ledger
        log_fs, log_files, log_gone = ctx.list_source(cfg.source.log_data, LOG_SOURCE, ledger)
        log_guard = ctx.shrink_guard(EVENT_RECORDS, log_files)
        log_files, held = held_by_size(log_files, ledger, log_guard, engine.read_batch_bytes(log_files))
        ctx.count(LOG_SOURCE.name, 0, [], 0, [], held=held)
        # The engine may start reading the logs now, while the song files are listed and read: a batch waits
        # for the lookup only to be matched. Closed whatever happens, so nothing goes on parsing after a
        # failure.
        log_outcomes = engine.process_logs(log_fs, log_files, lookup, stager, ctx.timed, log_guard)
        try:
            song_fs, song_files, song_gone = ctx.list_source(cfg.source.song_data, SONG_SOURCE, ledger)
            song_guard = ctx.shrink_guard(SONG_RECORDS, song_files)
            redelivered = {f.url for f in (*song_files, *log_files) if f.url in ledger}
            for url in sorted(ctx.options.accept_shrunk - redelivered - ctx.kept()):
                log.warning("--accept-shrunk %s: not a re-delivered file this run reads; nothing to accept", url)
            # Listed first, so a run that reads no song file reads only the lookup the last load left.
            located = bool(song_files) or full
            lookup_built = ctx.retry("reading the lookup", ctx.dest.lookup_built)
            stored_lookup = None
            if not located and lookup_built:
                stored_lookup = ctx.retry("reading the lookup", ctx.dest.stored_lookup)
                stored_songs = frames.empty(SONG_RECORDS)
            else:
                stored_songs = ctx.retry(
                    "reading the catalogue", lambda: ctx.dest.stored_records(SONG_RECORDS, located=located)
                )
        except BaseException:
            log_outcomes.close()
            raise
    return Listed(
        log_files,
        log_gone,
        log_outcomes,
        song_fs,
        song_files,
        song_gone,
        song_guard,
        stored_songs,
        stored_lookup,
        lookup_built,
        redelivered,
    )
