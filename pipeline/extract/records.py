"""What a source yields: a frame of records with the file and line each came from, and the records set aside."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.extract.discover import SourceFile
from pipeline.extract.fetch import Segment
from pipeline.extract.sources import SourceSpec

FILE_COL = "_file"


LINE_COL = "_line"


@dataclass(frozen=True)
class Reject:
    """A record (or a whole file) that could not be used, kept with where it came from and why."""

    source: str  # "song_data" or "log_data"
    file: str
    line: int | None  # 1-based; None when the whole file is rejected
    reason: str
    raw: str
    # Bytes of source lost with it.
    size: int = 0
    # 1 for one well-formed record that failed a type or a check; 0 for bytes that are not one record (a file
    # rejected whole, a broken line), which weigh the records their size would hold (``rejects.py``).
    records: int = 0


@dataclass
class Extracted:
    """One source's records: a frame whose ``_file`` column indexes ``files``."""

    spec: SourceSpec
    files: list[SourceFile]
    frame: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    bytes_read: int = 0
    # Files that could not be read at all (indexes into ``files``): not loaded, so not recorded as loaded.
    unread: set[int] = field(default_factory=set)
    # Files gone between the listing and the read (indexes into ``files``): as if no longer listed.
    vanished: set[int] = field(default_factory=set)
    # Re-delivered files held back by the shrink guard (indexes into ``files``): their rows are not here.
    held: set[int] = field(default_factory=set)
    # Files read whole in this batch (indexes into ``files``): a batch's ``files`` may be the run's whole list,
    # and a file larger than a batch comes in pieces over several.
    whole: set[int] = field(default_factory=set)

    @property
    def records(self) -> int:
        """Records read, good and rejected (a rejected whole file counts as one)."""
        return len(self.frame) + len(self.rejects)


def raw_text(data: bytes) -> str:
    # backslashreplace keeps invalid bytes visible and recoverable instead of silently replacing them.
    return data.decode("utf-8", errors="backslashreplace")


def pandas_type(t: pa.DataType) -> object:
    """The pandas type the pipeline's frames hold an Arrow column as: text as Arrow strings, integers as Int64."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pd.StringDtype("pyarrow")
    if pa.types.is_integer(t):
        return pd.Int64Dtype()
    return None


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
    """Registered by name in ``formats.FORMATS``, with the suffix of its files."""

    def parse(
        self, spec: SourceSpec, names: Sequence[str], segments: Sequence[Segment], sizes: Sequence[int]
    ) -> Parsed:
        """Rows of ``segments`` (pieces of the files ``names``; ``sizes`` weighs a file that could not be read)."""
        ...
