"""The two source datasets as SPEC.md describes them: field types, and what makes a record usable.

The Arrow schemas are handed to the JSON parser so that every file is parsed with the same types
(no per-file inference, no inexact float parsing), and a field of the wrong type is caught at parse time.
Each source's records are also kept in the warehouse (``schema.RECORDS``) under snake_case column names;
``columns`` maps one to the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipeline.core.schema import EVENT_RECORDS, SONG_RECORDS, Table
from pipeline.extract.formats import DEFAULT_FORMAT


@dataclass(frozen=True)
class SourceSpec:
    name: str
    schema: pa.Schema
    # A record missing any of these is rejected: nothing downstream can place it.
    required: tuple[str, ...]
    # Where the records are kept, and source field -> column there.
    records: Table
    columns: dict[str, str]
    # Epoch-millisecond field that must fall in a plausible range, if any.
    epoch_ms_field: str | None = None
    # The files' format: a name in ``formats.FORMATS``.
    format: str = DEFAULT_FORMAT

    def __post_init__(self) -> None:
        kept = set(self.records.column_names)
        missing = [c for c in self.columns.values() if c not in kept]
        if missing or set(self.columns) != set(self.schema.names):
            raise ValueError(f"{self.name}: field/column map out of step with {self.records.name}: {missing}")


SONG_SOURCE = SourceSpec(
    name="song_data",
    schema=pa.schema(
        [
            ("num_songs", pa.int64()),
            ("artist_id", pa.string()),
            ("artist_latitude", pa.float64()),
            ("artist_longitude", pa.float64()),
            ("artist_location", pa.string()),
            ("artist_name", pa.string()),
            ("song_id", pa.string()),
            ("title", pa.string()),
            ("duration", pa.float64()),
            ("year", pa.int64()),
        ]
    ),
    required=("song_id", "artist_id"),
    records=SONG_RECORDS,
    columns={
        n: n
        for n in (
            "num_songs",
            "artist_id",
            "artist_latitude",
            "artist_longitude",
            "artist_location",
            "artist_name",
            "song_id",
            "title",
            "duration",
            "year",
        )
    },
)

LOG_SOURCE = SourceSpec(
    name="log_data",
    schema=pa.schema(
        [
            ("artist", pa.string()),
            ("auth", pa.string()),
            ("firstName", pa.string()),
            ("gender", pa.string()),
            ("itemInSession", pa.int64()),
            ("lastName", pa.string()),
            ("length", pa.float64()),
            ("level", pa.string()),
            ("location", pa.string()),
            ("method", pa.string()),
            ("page", pa.string()),
            ("registration", pa.float64()),
            ("sessionId", pa.int64()),
            ("song", pa.string()),
            ("status", pa.int64()),
            ("ts", pa.int64()),
            ("userAgent", pa.string()),
            ("userId", pa.string()),
        ]
    ),
    required=("ts", "sessionId", "itemInSession", "page", "userId"),
    records=EVENT_RECORDS,
    columns={
        "artist": "artist",
        "auth": "auth",
        "firstName": "first_name",
        "gender": "gender",
        "itemInSession": "item_in_session",
        "lastName": "last_name",
        "length": "length",
        "level": "level",
        "location": "location",
        "method": "method",
        "page": "page",
        "registration": "registration",
        "sessionId": "session_id",
        "song": "song",
        "status": "status",
        "ts": "ts",
        "userAgent": "user_agent",
        "userId": "user_id",
    },
    epoch_ms_field="ts",
)

# Plausible event times: eventsim data starts in 2018; anything before 2000 or after 2100 is a unit bug.
MIN_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
