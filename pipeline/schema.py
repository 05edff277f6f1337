"""The star schema, defined once.

Every DDL statement, every staged Parquet file and every merge is derived from the objects below, so a
column added here reaches DuckDB, Redshift, the staging files and the checks together and cannot drift
between them. Types are logical; each warehouse dialect maps them to its own names (see ``sql.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import pyarrow as pa


class Kind(Enum):
    """Logical column types, each with one Arrow type used for staging."""

    TEXT = "text"
    INT = "int"
    BIGINT = "bigint"
    SMALLINT = "smallint"
    DOUBLE = "double"
    TIMESTAMP = "timestamp"


ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.TEXT: pa.string(),
    Kind.INT: pa.int32(),
    Kind.BIGINT: pa.int64(),
    Kind.SMALLINT: pa.int16(),
    Kind.DOUBLE: pa.float64(),
    # Naive UTC: Redshift's TIMESTAMP has no zone, and analysts' queries compare against UTC literals.
    Kind.TIMESTAMP: pa.timestamp("us"),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = True
    # Longest value in bytes (UTF-8), for VARCHAR sizing on Redshift, which counts bytes, not characters.
    max_bytes: int | None = None
    doc: str = ""
    # Bookkeeping columns that are not part of the analysts' contract in SPEC.md.
    internal: bool = False


@dataclass(frozen=True)
class ForeignKey:
    column: str
    ref_table: str
    ref_column: str
    # A null value is allowed and not checked (songplays without a matched song).
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    doc: str = ""
    foreign_keys: tuple[ForeignKey, ...] = ()
    # Redshift physical design. ``dist_style`` is KEY when ``dist_key`` is set, else ALL or EVEN.
    dist_style: str = "EVEN"
    dist_key: str | None = None
    sort_key: tuple[str, ...] = ()
    # When set, a staged row replaces a stored row of the same key only if this column is not older,
    # so that backfills of old data never overwrite newer facts (a user's latest level).
    version_column: str | None = None
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})
        for name in (*self.primary_key, *self.sort_key, *(fk.column for fk in self.foreign_keys)):
            if name not in self._by_name:
                raise ValueError(f"table {self.name}: unknown column {name!r}")
        if self.dist_key is not None and self.dist_key not in self._by_name:
            raise ValueError(f"table {self.name}: unknown dist key {self.dist_key!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, ARROW_TYPES[c.kind], nullable=c.nullable) for c in self.columns])


def _text(name: str, max_bytes: int, nullable: bool = True, doc: str = "") -> Column:
    return Column(name, Kind.TEXT, nullable=nullable, max_bytes=max_bytes, doc=doc)


USERS = Table(
    name="users",
    doc="One row per non-empty userId seen in any event; attributes from the user's latest event.",
    columns=(
        _text("user_id", 64, nullable=False, doc="The source userId, kept as text so it joins everywhere."),
        _text("first_name", 256),
        _text("last_name", 256),
        _text("gender", 16),
        _text("level", 16, doc="free or paid, as of the user's latest event by ts."),
        Column(
            "last_seen_at",
            Kind.TIMESTAMP,
            doc="Time of the event the level was taken from; lets late backfills keep the newer level.",
            internal=True,
        ),
    ),
    primary_key=("user_id",),
    dist_style="ALL",
    sort_key=("user_id",),
    version_column="last_seen_at",
)

SONGS = Table(
    name="songs",
    doc="One row per song_id from the song metadata.",
    columns=(
        _text("song_id", 32, nullable=False),
        _text("title", 1024),
        _text("artist_id", 32),
        Column("year", Kind.SMALLINT, doc="Release year; null where the source says 0 (unknown)."),
        Column("duration", Kind.DOUBLE, doc="Seconds."),
    ),
    primary_key=("song_id",),
    foreign_keys=(ForeignKey("artist_id", "artists", "artist_id"),),
    dist_style="ALL",
    sort_key=("song_id",),
)

ARTISTS = Table(
    name="artists",
    doc="One row per artist_id from the song metadata.",
    columns=(
        _text("artist_id", 32, nullable=False),
        _text("name", 1024),
        _text("location", 1024, doc="Null where the source has an empty string."),
        Column("latitude", Kind.DOUBLE),
        Column("longitude", Kind.DOUBLE),
    ),
    primary_key=("artist_id",),
    dist_style="ALL",
    sort_key=("artist_id",),
)

TIME = Table(
    name="time",
    doc="One row per distinct songplays.start_time, broken into calendar parts (UTC).",
    columns=(
        Column("start_time", Kind.TIMESTAMP, nullable=False),
        Column("hour", Kind.SMALLINT, nullable=False),
        Column("day", Kind.SMALLINT, nullable=False, doc="Day of month, 1-31."),
        Column("week", Kind.SMALLINT, nullable=False, doc="ISO 8601 week of year, 1-53."),
        Column("month", Kind.SMALLINT, nullable=False),
        Column("year", Kind.SMALLINT, nullable=False, doc="Calendar year (not the ISO week-year)."),
        Column("weekday", Kind.SMALLINT, nullable=False, doc="ISO 8601: 1 = Monday ... 7 = Sunday."),
    ),
    primary_key=("start_time",),
    dist_style="KEY",
    dist_key="start_time",
    sort_key=("start_time",),
)

SONGPLAYS = Table(
    name="songplays",
    doc="One row per NextSong event with a non-empty userId.",
    columns=(
        _text(
            "songplay_id",
            128,
            nullable=False,
            doc="'<userId>:<sessionId>:<itemInSession>', the event's natural key: a rerun never duplicates.",
        ),
        Column("start_time", Kind.TIMESTAMP, nullable=False, doc="UTC, from ts (epoch ms)."),
        _text("user_id", 64, nullable=False),
        _text("level", 16, doc="The user's level at the time of the event."),
        _text("song_id", 32, doc="Null when no song matches exactly."),
        _text("artist_id", 32, doc="Null when no song matches exactly."),
        Column("session_id", Kind.BIGINT),
        _text("location", 1024),
        _text("user_agent", 2048),
    ),
    primary_key=("songplay_id",),
    foreign_keys=(
        ForeignKey("user_id", "users", "user_id"),
        ForeignKey("start_time", "time", "start_time"),
        ForeignKey("song_id", "songs", "song_id", nullable=True),
        ForeignKey("artist_id", "artists", "artist_id", nullable=True),
    ),
    dist_style="KEY",
    dist_key="start_time",
    sort_key=("start_time",),
)

# Dimensions first: the order in which tables are created, loaded and checked.
TABLES: tuple[Table, ...] = (USERS, ARTISTS, SONGS, TIME, SONGPLAYS)

# Bookkeeping beside the star, not part of the analysts' contract.
LOADED_FILES = Table(
    name="_sparkify_loaded_files",
    doc="The ledger: every source file loaded, so a run reads only new or changed files. Written in the "
    "same transaction as the data, so the two never disagree.",
    columns=(
        _text("url", 2048, nullable=False),
        _text("source", 16, nullable=False, doc="song_data or log_data"),
        Column("size", Kind.BIGINT, nullable=False),
        _text("version", 256, nullable=False, doc="ETag on S3, modification time (ns) on local disks."),
        _text("run_id", 64, nullable=False),
        Column("loaded_at", Kind.TIMESTAMP, nullable=False),
    ),
    primary_key=("url",),
    dist_style="ALL",
    sort_key=("url",),
)

RUNS = Table(
    name="_sparkify_runs",
    doc="Run history: one row per run, written at its start and updated at its end.",
    columns=(
        _text("run_id", 64, nullable=False),
        Column("started_at", Kind.TIMESTAMP, nullable=False),
        Column("ended_at", Kind.TIMESTAMP),
        _text("status", 16, nullable=False, doc="running, succeeded, failed, or abandoned (killed)."),
        Column("files_read", Kind.BIGINT),
        Column("records_read", Kind.BIGINT),
        Column("records_rejected", Kind.BIGINT),
        _text("rows_merged", 1024, doc="Rows written per table, as JSON."),
        _text("error", 4096),
    ),
    primary_key=("run_id",),
    dist_style="ALL",
    sort_key=("started_at",),
)

BOOKKEEPING: tuple[Table, ...] = (LOADED_FILES, RUNS)
ALL_TABLES: tuple[Table, ...] = TABLES + BOOKKEEPING
BY_NAME: dict[str, Table] = {t.name: t for t in ALL_TABLES}
