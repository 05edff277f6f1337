"""The seam between bytes and rows: a source format turns one batch's segments into Arrow rows that each know
their file and line, and sets aside what it cannot parse.

A format receives a batch as segments of its files: a file under the batch size arrives whole (``Segment.whole``),
a larger one in pieces cut at line breaks, so a format whose files are not line-based must keep its files under
the batch size. Everything around it is format-neutral: listing (by the suffix registered here), fetching,
validation against the source's schema and the rejects file (``reader``), and every stage after. A new format
is one module defining ``FORMAT`` (an object with the shape of ``records.SourceFormat``) plus one entry in
``FORMATS``; a source names its format in ``SourceSpec.format``. ``docs/architecture.md`` walks through adding
one. This module is only the registry, light enough for the listing that starts before the run's imports.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Registered:
    suffix: str
    # The module defining ``FORMAT``, imported when first parsed with, so listing files (and ``--help``) never
    # imports a parser.
    module: str


DEFAULT_FORMAT = "json"
FORMATS: dict[str, Registered] = {
    "json": Registered(".json", "pipeline.extract.json_lines"),
}


def suffix_of(name: str) -> str:
    return FORMATS[name].suffix
