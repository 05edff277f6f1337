"""The song lookup the warehouse keeps (``schema.SONG_LOOKUP``) names songs as ``songs`` holds them."""

from __future__ import annotations

from pipeline.checks.base import Check, Target
from pipeline.core.schema import SONG_LOOKUP, SONGS


def lookup_checks(target: Target) -> list[Check]:
    """Every entry of the kept lookup names a song of ``songs`` with its title, length and artist: both come from
    one chosen record of each song, so an entry that does not was left stale (by a version that changed song
    records without the lookup, or by hand). The audit's only: a night writes the lookup from the changes it
    derives, and checks what it wrote through the plays it matches."""
    if target.scope is not None:
        return []
    d = target.dialect
    lookup, songs = d.qualified(target.schema, SONG_LOOKUP.name), d.qualified(target.schema, SONGS.name)
    return [
        Check(
            "_sparkify_song_lookup.names_songs",
            f'SELECT COUNT(*) FROM {lookup} l LEFT JOIN {songs} s ON s."song_id" = l."song_id" AND '
            's."title" = l."song_title" AND s."duration" = l."song_length" '
            'AND (s."artist_id" = l."artist_id" OR (s."artist_id" IS NULL AND l."artist_id" IS NULL)) '
            'WHERE s."song_id" IS NULL',
            0,
            "entries of the kept song lookup naming no song of songs with that title, length and artist",
        )
    ]
