"""The seam between bytes and rows: a source format turns one batch's segments into Arrow rows that each know
their file and line, and sets aside what it cannot parse.

Everything around it is format-neutral: listing, fetching and streaming (``fetch``), validation against the
source's schema and the rejects file (``reader``), and every stage after. A new format (CSV, Parquet, Avro) is
one module defining ``FORMAT`` (an object with the shape of ``SourceFormat``) plus one line in ``FORMATS``;
a source names its format in ``SourceSpec.format``. ``docs/architecture.md`` walks through adding one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from pipeline.extract.fetch import Segment
    from pipeline.extract.records import Reject
    from pipeline.extract.sources import SourceSpec


@dataclass
class Parsed:
    """One batch as rows: ``table`` has the source's schema, ``file_ids`` and ``line_nos`` say where each row
    came from (indexes into the batch's files, 1-based lines)."""

    table: pa.Table
    file_ids: np.ndarray
    line_nos: np.ndarray
    rejects: list[Reject]
    # The bytes the batch held, with the size of files that could not be read (what was read and what was
    # lost are one total).
    bytes_read: int
    # The raw bytes of (file, line), for the rejects of rows that parsed but fail validation.
    raw_line: Callable[[int, int], bytes]
    unread: set[int] = field(default_factory=set)
    vanished: set[int] = field(default_factory=set)
    whole: set[int] = field(default_factory=set)


class SourceFormat(Protocol):
    # The name a source gives in ``SourceSpec.format``.
    name: str
    # The data files' name ending; compressed variants (``.json.gz``) are found by fsspec's inference.
    suffix: str

    def parse(
        self, spec: SourceSpec, names: Sequence[str], segments: Sequence[Segment], sizes: Sequence[int]
    ) -> Parsed:
        """Rows of ``segments`` (pieces of the files ``names``; ``sizes`` weighs a file that could not be read)."""
        ...


@dataclass(frozen=True)
class Registered:
    suffix: str
    # Imported when first parsed with, so listing files (and ``--help``) never imports a parser.
    module: str


DEFAULT_FORMAT = "json"
FORMATS: dict[str, Registered] = {
    "json": Registered(".json", "pipeline.extract.json_lines"),
}


def suffix_of(name: str) -> str:
    return FORMATS[name].suffix


def format_named(name: str) -> SourceFormat:
    fmt: SourceFormat = importlib.import_module(FORMATS[name].module).FORMAT
    return fmt
