"""Frames to Parquet: the hand-off between the transforms and the warehouse's bulk load.

Files are written with the types of ``schema.py``, so a frame whose types drifted fails here, before
anything reaches the warehouse. Local staging (for DuckDB) writes with pyarrow; S3 staging (for Redshift's
COPY) writes with awswrangler, as the production design has it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .load.base import Staged, StagedTable
from .schema import STAGED, TYPES, Table

if TYPE_CHECKING:
    import boto3


def to_arrow(frame: pd.DataFrame, table: Table) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, schema=table.arrow_schema(), preserve_index=False, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
        raise TypeError(f"{table.name}: frame does not match the schema: {exc}") from exc


def run_location(root: str, run_id: str) -> str:
    return f"{root.rstrip('/')}/{run_id}"


def _write_s3(frame: pd.DataFrame, table: Table, path: str, session: boto3.Session | None) -> None:
    import awswrangler as wr

    # Conform first, so awswrangler writes exactly the schema's types.
    conformed = to_arrow(frame, table).to_pandas(types_mapper=pd.ArrowDtype)
    wr.s3.to_parquet(
        df=conformed,
        path=path,
        index=False,
        dtype={c.name: TYPES[c.kind].athena for c in table.columns},
        compression="snappy",
        boto3_session=session,
        # Microseconds: Redshift's TIMESTAMP precision, and no loss of the source's milliseconds.
        pyarrow_additional_kwargs={"coerce_timestamps": "us", "allow_truncated_timestamps": False},
    )


def write_part(table: Table, frame: pd.DataFrame, path: str, session: boto3.Session | None = None) -> None:
    """One Parquet file typed as ``table``, on S3 (``s3://``) or a local disk."""
    if path.startswith("s3://"):
        _write_s3(frame, table, path, session)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # No column statistics: writes are ~20% faster, and a part holds one batch, read whole by the load.
    pq.write_table(to_arrow(frame, table), path, compression="snappy", write_statistics=False)


class Stager:
    """Writes frames batch by batch as ``<root>/<run_id>/<name>/part-NNNNN.parquet``.

    Each batch's frames are written and dropped, so staging memory is one batch's; the warehouse's bulk
    load then reads every part of a relation at once (a COPY of its prefix on Redshift).
    """

    def __init__(
        self,
        root: str,
        run_id: str,
        session: boto3.Session | None = None,
        retry: Callable[[str, Callable[[], None]], None] | None = None,
    ):
        self.location = run_location(root, run_id)
        self.run_id = run_id
        self.session = session
        # Writes to an object store meet transient faults like reads do; they are retried the same way.
        self.retry = retry or (lambda step, fn: fn())
        # Every staged relation is there, possibly with no parts (a run with nothing new).
        self.files: dict[str, list[str]] = {name: [] for name in STAGED}
        self.rows: dict[str, int] = dict.fromkeys(self.files, 0)

    def write(self, name: str, frame: pd.DataFrame, part: str) -> str:
        """Write one part file and return its path (also called from distributed tasks)."""
        path = f"{self.location}/{name}/part-{part}.parquet"
        self.retry(f"staging {path}", lambda: write_part(STAGED[name], frame, path, self.session))
        return path

    def record(self, name: str, path: str, rows: int) -> None:
        self.files[name].append(path)
        self.rows[name] += rows

    def add(self, frames: dict[str, pd.DataFrame]) -> None:
        for name, frame in frames.items():
            if not frame.empty:
                self.record(name, self.write(name, frame, f"{len(self.files[name]):05d}"), len(frame))

    def finish(self) -> Staged:
        tables = {
            name: StagedTable(table=STAGED[name], files=files, rows=self.rows[name], prefix=f"{self.location}/{name}/")
            for name, files in self.files.items()
        }
        return Staged(run_id=self.run_id, location=self.location, tables=tables)


def remove(staged: Staged, session: boto3.Session | None = None) -> None:
    if staged.location.startswith("s3://"):
        import awswrangler as wr

        wr.s3.delete_objects(path=staged.location + "/", boto3_session=session)
        return
    import shutil

    shutil.rmtree(staged.location, ignore_errors=True)
