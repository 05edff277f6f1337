"""Star frames to Parquet: the hand-off between the transforms and the warehouse's bulk load.

Files are written with the types of ``schema.py``, so a frame whose types drifted fails here, before
anything reaches the warehouse. Local staging (for DuckDB) writes with pyarrow; S3 staging (for Redshift's
COPY) writes with awswrangler, as the production design has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .load.base import Staged, StagedTable
from .schema import BY_NAME, Kind, Table

if TYPE_CHECKING:
    import boto3

# awswrangler names types as Athena/Glue does.
_ATHENA = {
    Kind.TEXT: "string",
    Kind.INT: "int",
    Kind.BIGINT: "bigint",
    Kind.SMALLINT: "smallint",
    Kind.DOUBLE: "double",
    Kind.TIMESTAMP: "timestamp",
}


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
        dtype={c.name: _ATHENA[c.kind] for c in table.columns},
        compression="snappy",
        boto3_session=session,
        # Microseconds: Redshift's TIMESTAMP precision, and no loss of the source's milliseconds.
        pyarrow_additional_kwargs={"coerce_timestamps": "us", "allow_truncated_timestamps": False},
    )


def stage(frames: dict[str, pd.DataFrame], root: str, run_id: str, session: boto3.Session | None = None) -> Staged:
    """Write each frame as ``<root>/<run_id>/<table>.parquet`` and describe what was written."""
    location = run_location(root, run_id)
    remote = location.startswith("s3://")
    if not remote:
        Path(location).mkdir(parents=True, exist_ok=True)
    tables: dict[str, StagedTable] = {}
    for name, frame in frames.items():
        table = BY_NAME[name]
        path = f"{location}/{name}.parquet"
        if remote:
            _write_s3(frame, table, path, session)
        else:
            pq.write_table(to_arrow(frame, table), path, compression="snappy")
        tables[name] = StagedTable(table=table, files=[path], rows=len(frame))
    return Staged(run_id=run_id, location=location, tables=tables)


def remove(staged: Staged, session: boto3.Session | None = None) -> None:
    if staged.location.startswith("s3://"):
        import awswrangler as wr

        wr.s3.delete_objects(path=staged.location + "/", boto3_session=session)
        return
    import shutil

    shutil.rmtree(staged.location, ignore_errors=True)
