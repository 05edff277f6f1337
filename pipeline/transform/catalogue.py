"""Song records to the ``songs`` and ``artists`` rows and the lookup that matches a play to its song.

The catalogue is rebuilt from every stored song record each night, so a re-delivered or removed song file
changes exactly the rows (and the matches) it should; ``catalogue_changes`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.schema import ARTISTS, LOOKUP_CHANGES, SONGS
from pipeline.transform.frames import blank_to_null, concat, conform, greatest

# Of several records of one song_id (or artist_id), the one with most known attributes wins, then the greater
# value field by field in this order.
SONG_ORDER = [
    "title",
    "artist_id",
    "duration",
    "year",
    "artist_name",
    "artist_location",
    "artist_latitude",
    "artist_longitude",
    "num_songs",
]


LOOKUP_KEY = ["song_title", "artist_name", "song_length"]


def _chosen_songs(song_records: pd.DataFrame) -> pd.DataFrame:
    """One record per song_id: most known attributes, then the greater values (see ``SONG_ORDER``)."""
    df = song_records.assign(
        _known=song_records[["title", "artist_id", "duration"]].notna().sum(axis=1)
        + (song_records["year"].fillna(0) != 0).astype(int)
    )
    return greatest(df, ["song_id"], ["_known", *SONG_ORDER])


def songs(song_records: pd.DataFrame) -> pd.DataFrame:
    """One row per song_id; of several records of one song, the most complete wins, then the greater values."""
    df = _chosen_songs(song_records)
    out = pd.DataFrame(
        {
            "song_id": df["song_id"],
            "title": df["title"],
            "artist_id": df["artist_id"],
            # 0 is the Million Song Dataset's "unknown year".
            "year": df["year"].mask(df["year"] == 0).astype("Int16"),
            "duration": df["duration"],
        }
    )
    return conform(out.sort_values("song_id"), SONGS)


def artists(song_records: pd.DataFrame) -> pd.DataFrame:
    """One row per artist_id, from every song file of the artist.

    The files disagree (one has the location, another has it empty; names are spelled several ways), so the
    record with the most known attributes wins, then the greater values: the same records always give the
    same row, whichever night each arrived.
    """
    df = pd.DataFrame(
        {
            "artist_id": song_records["artist_id"],
            "name": song_records["artist_name"],
            "location": blank_to_null(song_records["artist_location"]),
            "latitude": song_records["artist_latitude"],
            "longitude": song_records["artist_longitude"],
        }
    )
    df["_known"] = df[["name", "location", "latitude", "longitude"]].notna().sum(axis=1)
    df = greatest(df, ["artist_id"], ["_known", "name", "location", "latitude", "longitude"])
    return conform(df.sort_values("artist_id"), ARTISTS)


def song_lookup(song_records: pd.DataFrame) -> pd.DataFrame:
    """(title, artist name, duration) -> (song_id, artist_id), one song per key.

    Exact matching as SPEC.md defines it, on each song's own record: its title, duration and the artist name
    *that song file* spells (the catalogue spells some artists several ways; ``artists.name`` holds one). Several
    songs can share all three (one recording on two releases): the smallest song_id wins, so a play is never
    counted twice.
    """
    df = _chosen_songs(song_records)
    df = df.loc[df["title"].notna() & df["artist_name"].notna() & df["duration"].notna()]
    out = pd.DataFrame(
        {
            "song_title": df["title"].astype("string[pyarrow]"),
            "artist_name": df["artist_name"].astype("string[pyarrow]"),
            "song_length": df["duration"].astype("float64"),
            "song_id": df["song_id"].astype("string[pyarrow]"),
            "artist_id": df["artist_id"].astype("string[pyarrow]"),
        }
    )
    # Sorted by the key, then song_id: the first of each key is its smallest song_id, and the lookup is in key
    # order at once. One sort by Arrow on the typed columns, not two stable sorts in pandas.
    columns = pa.table({c: pa.array(out[c]) for c in [*LOOKUP_KEY, "song_id"]})
    out = out.iloc[pc.sort_indices(columns, sort_keys=[(c, "ascending") for c in columns.column_names]).to_numpy()]
    out = out.loc[~out.duplicated(LOOKUP_KEY).to_numpy()]
    return conform(out, LOOKUP_CHANGES)


def typed_lookup(stored: pd.DataFrame) -> pd.DataFrame:
    """The lookup as the warehouse kept it (``schema.SONG_LOOKUP``), typed as ``song_lookup`` gives it."""
    text = {c: "string[pyarrow]" for c in ("song_title", "artist_name", "song_id", "artist_id")}
    return conform(stored.astype({**text, "song_length": "float64"}), LOOKUP_CHANGES)


@dataclass
class Catalogue:
    """What the song files give: two dimensions and the lookup plays are matched with."""

    songs: pd.DataFrame
    artists: pd.DataFrame
    lookup: pd.DataFrame


def catalogue(song_records: pd.DataFrame) -> Catalogue:
    """The song side of the star from every current song record (the catalogue is small: it is always whole)."""
    return Catalogue(songs=songs(song_records), artists=artists(song_records), lookup=song_lookup(song_records))


def _changed(new: pd.DataFrame, old: pd.DataFrame, key: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of ``new`` not identical in ``old`` (to write), and keys of ``old`` absent from ``new`` (to delete)."""
    if old.empty:  # a first load: everything is new, and comparing with nothing is not free
        return new.reset_index(drop=True), old[key].reset_index(drop=True)
    cols = list(new.columns)
    merged = new.merge(old[cols], how="left", on=cols, indicator=True)
    upsert = merged.loc[merged["_merge"] == "left_only", cols]
    gone = old.loc[~old.set_index(key).index.isin(new.set_index(key).index), key]
    return upsert.reset_index(drop=True), gone.reset_index(drop=True)


@dataclass
class CatalogueChanges:
    """What a run changes on the song side, relative to what the warehouse holds."""

    songs: pd.DataFrame
    songs_gone: pd.DataFrame
    artists: pd.DataFrame
    artists_gone: pd.DataFrame
    # Keys whose song changed (added, removed, re-pointed); stored plays of these keys are matched again.
    lookup: pd.DataFrame


def catalogue_changes(new: Catalogue, old: Catalogue) -> CatalogueChanges:
    songs_upsert, songs_gone = _changed(new.songs, old.songs, ["song_id"])
    artists_upsert, artists_gone = _changed(new.artists, old.artists, ["artist_id"])
    lookup_upsert, lookup_gone = _changed(new.lookup, old.lookup, LOOKUP_KEY)
    none = pd.array([None] * len(lookup_gone), dtype="string[pyarrow]")
    lookup_gone = lookup_gone.assign(song_id=none, artist_id=none)
    lookup = concat([lookup_upsert, lookup_gone])
    return CatalogueChanges(
        songs=songs_upsert,
        songs_gone=songs_gone,
        artists=artists_upsert,
        artists_gone=artists_gone,
        lookup=conform(lookup, LOOKUP_CHANGES).astype(new.lookup.dtypes.to_dict()),
    )
