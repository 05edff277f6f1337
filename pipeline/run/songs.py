"""The song side of a run: the run's song files read in one batch, what they change in the catalogue staged,
and the lookup every log batch is matched against."""

from __future__ import annotations

import pandas as pd

from pipeline.core.schema import LOOKUP_CHANGES, SONG_LOOKUP, SONG_RECORDS
from pipeline.extract.sources import SONG_SOURCE
from pipeline.load import stage as staging
from pipeline.ops import faults
from pipeline.run.context import RunContext
from pipeline.run.engine import Engine
from pipeline.run.prepare import Listed
from pipeline.run.redelivery import Held
from pipeline.transform import batch, catalogue, frames


def song_side(ctx: RunContext, engine: Engine, stager: staging.Stager, listed: Listed) -> pd.DataFrame:
    """Read the run's song files, stage what they change in the catalogue, and return its lookup."""
    full = ctx.options.full_refresh
    song_files, song_gone, stored_songs = listed.song_files, listed.song_gone, listed.stored_songs
    # Songs first, in one batch: the catalogue is small, every log batch needs its lookup, and a run that
    # changes it must match stored plays again.
    with ctx.timed("extract"):
        song_x = engine.read_songs(listed.song_fs, song_files)
    faults.checkpoint("songs-read")
    held: list[Held] = []
    if listed.song_guard is not None:
        song_x, held = listed.song_guard.hold(song_x)
    ctx.count(
        SONG_SOURCE.name,
        song_x.records,
        song_x.rejects,
        song_x.bytes_read,
        [song_x.files[i].url for i in sorted(song_x.unread)],
        [song_x.files[i].url for i in sorted(song_x.vanished)],
        held,
    )
    # Files read but not taken as they stand (unreadable, gone, held) keep the records they had.
    kept_urls = [song_x.files[i].url for i in sorted(song_x.unread | song_x.vanished | song_x.held)]
    if not song_files and not full:
        # No song file read: the catalogue is the stored one and nothing in it changes; the run needs only its
        # lookup, as the last load left it, or derived once from the records where none was kept.
        if listed.stored_lookup is not None:
            return catalogue.typed_lookup(listed.stored_lookup)
        with ctx.timed("transform"):
            lookup = catalogue.song_lookup(frames.records_frame(stored_songs, SONG_SOURCE)[0])
        with ctx.timed("stage"):
            stager.add({SONG_LOOKUP.name: lookup})
        return lookup
    with ctx.timed("transform"):
        fresh = batch.song_records(song_x.frame, [f.url for f in song_x.files])
        if full:
            # Rebuilt from scratch: every file as the source has it now, and the kept records of song files
            # that have since left the source (a file that disappears deletes nothing) or were kept.
            kept = stored_songs.loc[batch.from_files(stored_songs, [*song_gone, *kept_urls])]
            staged_records = current = frames.concat([kept, fresh])
            old = catalogue.catalogue(frames.records_frame(stored_songs.iloc[:0], SONG_SOURCE)[0])
        else:
            reread = {f.url for f in song_files} - set(kept_urls)
            current = frames.concat([stored_songs.loc[~batch.from_files(stored_songs, reread)], fresh])
            staged_records = fresh
            old = catalogue.catalogue(frames.records_frame(stored_songs, SONG_SOURCE)[0])
        new = catalogue.catalogue(frames.records_frame(current, SONG_SOURCE)[0])
        changes = catalogue.catalogue_changes(new, old)
    with ctx.timed("stage"):
        stager.add(
            {
                SONG_RECORDS.name: staged_records,
                "songs": changes.songs,
                "songs_keys": changes.songs_gone,
                "artists": changes.artists,
                "artists_keys": changes.artists_gone,
                LOOKUP_CHANGES.name: changes.lookup,
                # A warehouse that never kept the lookup keeps it whole from now on.
                **({SONG_LOOKUP.name: new.lookup} if not listed.lookup_built and not full else {}),
            }
        )
    return new.lookup
