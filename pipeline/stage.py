"""Star frames to Parquet: the hand-off between the transforms and the warehouse's bulk load.

Files are written with the Arrow types of ``schema.py``, so a frame whose types drifted fails here,
before anything reaches the warehouse, and both targets read the very same files.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from .discover import open_fs
from .load.base import Staged, StagedTable
from .schema import BY_NAME, Table


def to_arrow(frame: pd.DataFrame, table: Table) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, schema=table.arrow_schema(), preserve_index=False, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
        raise TypeError(f"{table.name}: frame does not match the schema: {exc}") from exc


def run_location(root: str, run_id: str) -> str:
    return f"{root.rstrip('/')}/{run_id}"


def stage(
    frames: dict[str, pd.DataFrame], root: str, run_id: str, storage_options: dict[str, Any] | None = None
) -> Staged:
    """Write each frame as ``<root>/<run_id>/<table>.parquet`` and describe what was written."""
    location = run_location(root, run_id)
    fs, base = open_fs(location, storage_options)
    fs.makedirs(base, exist_ok=True)
    tables: dict[str, StagedTable] = {}
    for name, frame in frames.items():
        table = BY_NAME[name]
        path = f"{base}/{name}.parquet"
        with fs.open(path, "wb") as fh:
            pq.write_table(to_arrow(frame, table), fh, compression="snappy")
        tables[name] = StagedTable(table=table, files=[f"{location}/{name}.parquet"], rows=len(frame))
    return Staged(run_id=run_id, location=location, tables=tables)


def remove(staged: Staged, storage_options: dict[str, Any] | None = None) -> None:
    fs: AbstractFileSystem
    fs, base = open_fs(staged.location, storage_options)
    if fs.exists(base):
        fs.rm(base, recursive=True)
