"""The warehouse schema, defined once.

Every DDL statement, every staged Parquet file, every merge, every check and the README's diagram are derived
from the objects below, so a column added here reaches DuckDB, Redshift, the staging files and the checks
together and cannot drift between them. Types are logical; ``TYPES`` says what each is called by Arrow (staging),
awswrangler (Athena names), SQL and the ER diagram.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


class Kind(Enum):
    """Logical column types."""

    TEXT = "text"
    INT = "int"
    BIGINT = "bigint"
    SMALLINT = "smallint"
    DOUBLE = "double"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class TypeNames:
    # pyarrow's alias for the type; pyarrow is imported only when a frame is built or staged, so commands that
    # only read the schema (``--help``, ``check``, ``runs``) start in a tenth of a second.
    arrow_alias: str
    athena: str  # how awswrangler names it when it writes Parquet to S3
    sql: str  # both warehouses' name (Redshift adds a VARCHAR length)
    er: str  # the mermaid diagram's

    @property
    def arrow(self) -> pa.DataType:
        import pyarrow

        return pyarrow.type_for_alias(self.arrow_alias)


TYPES: dict[Kind, TypeNames] = {
    Kind.TEXT: TypeNames("string", "string", "VARCHAR", "varchar"),
    Kind.INT: TypeNames("int32", "int", "INTEGER", "int"),
    Kind.BIGINT: TypeNames("int64", "bigint", "BIGINT", "bigint"),
    Kind.SMALLINT: TypeNames("int16", "smallint", "SMALLINT", "smallint"),
    Kind.DOUBLE: TypeNames("float64", "double", "DOUBLE PRECISION", "double"),
    # Naive UTC: Redshift's TIMESTAMP has no zone, and analysts' queries compare against UTC literals.
    Kind.TIMESTAMP: TypeNames("timestamp[us]", "timestamp", "TIMESTAMP", "timestamp"),
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
    # A run replaces this table's rows by this key (a prefix of the primary key): every row of a user in
    # ``user_levels`` is rewritten together. Defaults to the primary key.
    replace_key: tuple[str, ...] = ()
    # Columns the primary key determines that follow the order rows arrive in (a play's session): a check confined
    # to a night's keys matches them too, so the warehouse skips the blocks of earlier nights by their ranges.
    locality: tuple[str, ...] = ()
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})
        if not self.replace_key:
            object.__setattr__(self, "replace_key", self.primary_key)
        for name in (
            *self.primary_key,
            *self.sort_key,
            *self.replace_key,
            *self.locality,
            *(fk.column for fk in self.foreign_keys),
        ):
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
        import pyarrow

        return pyarrow.schema([pyarrow.field(c.name, TYPES[c.kind].arrow, nullable=c.nullable) for c in self.columns])

    def keys_table(self) -> Table:
        """A relation of this table's replace-key values: the rows a run rewrites or removes."""
        return Table(
            name=f"{self.name}_keys",
            columns=tuple(self.column(k) for k in self.replace_key),
            primary_key=self.replace_key,
        )


def _text(name: str, max_bytes: int, nullable: bool = True, doc: str = "", internal: bool = False) -> Column:
    return Column(name, Kind.TEXT, nullable=nullable, max_bytes=max_bytes, doc=doc, internal=internal)


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
            doc="Time of the user's latest event, the one the row's attributes come from.",
            internal=True,
        ),
    ),
    primary_key=("user_id",),
    dist_style="ALL",
    sort_key=("user_id",),
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
        _text("song_title", 1024, doc="The title the app logged (song); names the play even when no song matches."),
        _text("artist_name", 1024, doc="The artist the app logged (artist)."),
        Column("song_length", Kind.DOUBLE, doc="The length the app logged (length), seconds."),
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
    locality=("session_id",),
)

USER_LEVELS = Table(
    name="user_levels",
    doc="One row per period of a user's level: who was paying when, and for how long.",
    columns=(
        _text("user_id", 64, nullable=False),
        _text("level", 16, nullable=False),
        Column("valid_from", Kind.TIMESTAMP, nullable=False, doc="The first event of the period."),
        Column(
            "valid_to",
            Kind.TIMESTAMP,
            doc="The first event of the next period; null for the current one.",
        ),
    ),
    primary_key=("user_id", "valid_from"),
    foreign_keys=(ForeignKey("user_id", "users", "user_id"),),
    dist_style="ALL",
    sort_key=("user_id", "valid_from"),
    replace_key=("user_id",),
)

# Dimensions first: the order in which tables are created, loaded and checked.
TABLES: tuple[Table, ...] = (USERS, ARTISTS, SONGS, TIME, SONGPLAYS, USER_LEVELS)


# ----------------------------------------------------------------------------------- retained source records
#
# Every record of every file loaded, as parsed, with the file and line it came from. The star tables are a
# function of these records, so a run that must re-derive a row (a file re-delivered with changed content,
# the same event in two files) reads the records behind it here, not from a source that may have expired.

FILE = _text("file", 2048, nullable=False, doc="URL of the source file the record came from.")
LINE = Column("line", Kind.INT, nullable=False, doc="1-based line (or array element) in that file.")

EVENT_RECORDS = Table(
    name="_sparkify_event_records",
    doc="Every event of every loaded log file, typed, with its file and line; the source of users, "
    "user_levels and songplays.",
    columns=(
        _text("user_id", 64, doc="userId ('' for logged-out events)."),
        Column("session_id", Kind.BIGINT),
        Column("item_in_session", Kind.BIGINT),
        Column("ts", Kind.BIGINT, doc="Epoch milliseconds, UTC, as the source has it."),
        _text("page", 64),
        _text("level", 16),
        _text("first_name", 256),
        _text("last_name", 256),
        _text("gender", 16),
        _text("song", 1024),
        _text("artist", 1024),
        Column("length", Kind.DOUBLE),
        _text("location", 1024),
        _text("user_agent", 2048),
        _text("auth", 32),
        _text("method", 16),
        Column("status", Kind.BIGINT),
        Column("registration", Kind.DOUBLE),
        FILE,
        LINE,
    ),
    primary_key=("file", "line"),
    replace_key=("file",),
    dist_style="KEY",
    dist_key="user_id",
    sort_key=("user_id", "ts"),
)

SONG_RECORDS = Table(
    name="_sparkify_song_records",
    doc="Every record of every loaded song file, typed, with its file; the source of songs and artists.",
    columns=(
        _text("song_id", 32),
        _text("title", 1024),
        _text("artist_id", 32),
        _text("artist_name", 1024),
        _text("artist_location", 1024),
        Column("artist_latitude", Kind.DOUBLE),
        Column("artist_longitude", Kind.DOUBLE),
        Column("duration", Kind.DOUBLE),
        Column("year", Kind.BIGINT),
        Column("num_songs", Kind.BIGINT),
        FILE,
        LINE,
    ),
    primary_key=("file", "line"),
    replace_key=("file",),
    dist_style="ALL",
    sort_key=("file",),
)

RECORDS: tuple[Table, ...] = (SONG_RECORDS, EVENT_RECORDS)

# ----------------------------------------------------------------------------------- bookkeeping

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
        _text(
            "status",
            16,
            nullable=False,
            doc="running, succeeded, failed, interrupted (SIGINT, SIGTERM), or abandoned (killed).",
        ),
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

AUDITS = Table(
    name="_sparkify_audits",
    doc="Loads that checked the whole warehouse, not only the rows they wrote, and passed: the next one is due "
    "run.audit_days after the last (docs/operations.md).",
    columns=(
        _text("run_id", 64, nullable=False),
        Column("audited_at", Kind.TIMESTAMP, nullable=False),
        Column("checks", Kind.BIGINT, nullable=False, doc="Checks run, every one passed."),
    ),
    primary_key=("run_id",),
    dist_style="ALL",
    sort_key=("audited_at",),
)

BOOKKEEPING: tuple[Table, ...] = (LOADED_FILES, RUNS, AUDITS)

# ----------------------------------------------------------------------------------- hand-offs of one run
#
# Relations a run stages beside the star rows. They never become warehouse tables; they are typed here so
# that they are staged, copied and read back like everything else.

LOOKUP_CHANGES = Table(
    name="lookup_changes",
    doc="Catalogue keys whose song changed this run (added, removed or re-pointed): stored plays of these "
    "keys are matched again. song_id null means the key no longer matches any song.",
    columns=(
        _text("song_title", 1024, nullable=False),
        _text("artist_name", 1024, nullable=False),
        Column("song_length", Kind.DOUBLE, nullable=False),
        _text("song_id", 32),
        _text("artist_id", 32),
    ),
    primary_key=("song_title", "artist_name", "song_length"),
)

SONG_LOOKUP = Table(
    name="_sparkify_song_lookup",
    doc="The lookup plays are matched with, as the last load left it: a night that reads no song file reads it "
    "instead of deriving it again from every song record. Derived from the kept song records, kept up to date "
    "from lookup_changes in the load's transaction.",
    columns=tuple(_text("song_id", 32, nullable=False) if c.name == "song_id" else c for c in LOOKUP_CHANGES.columns),
    primary_key=LOOKUP_CHANGES.primary_key,
    dist_style="ALL",
)
# Kept beside the star and derived from the kept records: emptied with the star on a full refresh.
DERIVED: tuple[Table, ...] = (SONG_LOOKUP,)

RUN_FILES = Table(
    name="run_files",
    doc="The files this run (re)loads: their stored records are replaced.",
    columns=(_text("file", 2048, nullable=False),),
    primary_key=("file",),
)

EVENT_KEYS = Table(
    name="event_keys",
    doc="Natural keys of events whose rows must be derived again from every record that carries them.",
    columns=(
        _text("user_id", 64, nullable=False),
        Column("session_id", Kind.BIGINT, nullable=False),
        Column("item_in_session", Kind.BIGINT, nullable=False),
    ),
    primary_key=("user_id", "session_id", "item_in_session"),
)

REDERIVE = Table(
    name="rederive",
    doc="Windows of users' histories read back from the kept records: from_ts to to_ts, and the first "
    "millisecond after to_ts, up to until_ts, that has any record (the whole history: the smallest and "
    "largest BIGINT).",
    columns=(
        _text("user_id", 64, nullable=False),
        Column("from_ts", Kind.BIGINT, nullable=False),
        Column("to_ts", Kind.BIGINT, nullable=False),
        Column("until_ts", Kind.BIGINT, nullable=False),
    ),
    primary_key=("user_id", "from_ts"),
)

ALL_TABLES: tuple[Table, ...] = TABLES + RECORDS + DERIVED + BOOKKEEPING
# Everything a run stages, by the name its parts are staged under.
STAGED: dict[str, Table] = {
    t.name: t
    for t in (
        SONG_RECORDS,
        EVENT_RECORDS,
        SONGS,
        SONGS.keys_table(),
        ARTISTS,
        ARTISTS.keys_table(),
        TIME,
        SONGPLAYS,
        LOOKUP_CHANGES,
        SONG_LOOKUP,
        RUN_FILES,
        LOADED_FILES,
    )
}
BY_NAME: dict[str, Table] = {t.name: t for t in (*ALL_TABLES, *STAGED.values(), EVENT_KEYS, REDERIVE)}


def fixed(name: str) -> str:
    """The load's work relation holding reconciliation's rows (or keys) for ``name``: written by the load's merge,
    read by the run's reconciliation check."""
    return f"fix_{name}"
