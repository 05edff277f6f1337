"""Frame helpers every table rule shares: typed empty frames, concatenation that keeps types, the
greatest-record rule, epoch-millisecond conversion, and records as the warehouse keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.core.schema import Table
from pipeline.extract.records import FILE_COL, LINE_COL
from pipeline.extract.sources import SourceSpec

NEXT_SONG = "NextSong"


MS = 1_000_000  # nanoseconds per millisecond


# An event's natural key: the same event in two files, or twice in one, is one event.
EVENT_KEY = ["userId", "sessionId", "itemInSession"]


# Which of two records of one event wins: the later ts, then the greater value field by field in this order
# (null lowest). Key and order together are every field, so two records that tie on all of them are equal.
EVENT_ORDER = [
    "ts",
    "page",
    "level",
    "song",
    "artist",
    "length",
    "firstName",
    "lastName",
    "gender",
    "location",
    "userAgent",
    "auth",
    "method",
    "status",
    "registration",
]


def empty(table: Table) -> pd.DataFrame:
    """A frame with no rows and ``table``'s columns and types."""
    return table.arrow_schema().empty_table().to_pandas(types_mapper=pd.ArrowDtype)


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames one after another; empty ones are left out, so they cannot change the result's types."""
    full = [f for f in frames if len(f)]
    if not full:
        return frames[0].iloc[:0]
    return pd.concat(full, ignore_index=True) if len(full) > 1 else full[0].reset_index(drop=True)


def conform(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    return frame.loc[:, table.column_names].reset_index(drop=True)


def blank_to_null(s: pd.Series) -> pd.Series:
    return s.mask(s.str.strip() == "")


def greatest(frame: pd.DataFrame, key: list[str], order: list[str]) -> pd.DataFrame:
    """One row per ``key``: the greatest by ``order`` (nulls lowest). Rows keep their relative order.

    Only keys that occur more than once are sorted; in real data that is almost none.
    """
    if frame.empty:
        return frame
    contested = frame.duplicated(key, keep=False).to_numpy()
    if not contested.any():
        return frame
    winners = (
        frame[contested].sort_values(key + order, na_position="first", kind="stable").drop_duplicates(key, keep="last")
    )
    return pd.concat([frame[~contested], winners]).sort_index(kind="stable")


def ms_to_timestamp(ms: pd.Series | np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(ms, dtype="int64"), unit="ms"))


def timestamp_to_ms(ts: pd.Series) -> np.ndarray:
    """Warehouse TIMESTAMPs (any unit) back to epoch milliseconds."""
    return pd.to_datetime(ts).to_numpy("datetime64[ms]").astype("int64")


def to_records(frame: pd.DataFrame, spec: SourceSpec, urls: Sequence[str]) -> pd.DataFrame:
    """Parsed records as the warehouse keeps them (``schema.RECORDS``): snake_case, with file URL and line."""
    out = pd.DataFrame({column: frame[name] for name, column in spec.columns.items()}, index=frame.index)
    names = pa.array(list(urls), pa.string())
    out["file"] = pd.arrays.ArrowStringArray(names.take(pa.array(frame[FILE_COL].to_numpy(), pa.int32())))
    out["line"] = frame[LINE_COL].to_numpy("int32")
    return conform(out, spec.records)


def records_frame(records: pd.DataFrame, spec: SourceSpec) -> tuple[pd.DataFrame, list[str]]:
    """Records read back from the warehouse as ``extract`` gives them: source names and types, ``_file`` (an
    index into the returned URLs) and ``_line``. A read of some columns gives those fields only."""
    out = pd.DataFrame({name: records[column] for name, column in spec.columns.items() if column in records})
    for f in spec.schema:
        if f.name not in out:
            continue
        if pa.types.is_string(f.type):
            out[f.name] = out[f.name].astype("string[pyarrow]")
        elif pa.types.is_integer(f.type):
            out[f.name] = out[f.name].astype("Int64")
        else:
            out[f.name] = out[f.name].astype("float64")
    if "file" not in records:
        return out.reset_index(drop=True), []
    codes, urls = pd.factorize(records["file"])
    out[FILE_COL] = codes.astype("int32")
    out[LINE_COL] = records["line"].to_numpy("int32")
    # Through tolist: iterating an Arrow-backed index boxes each value.
    return out.reset_index(drop=True), list(map(str, urls.tolist()))
