"""What a source yields: a frame of records with the file and line each came from, and the records set aside."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from pipeline.extract.discover import SourceFile
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
