"""Frames to Parquet: the hand-off between the transforms and the warehouse's bulk load.

Files are written with the types of ``schema.py``, so a frame whose types drifted fails here, before
anything reaches the warehouse; the writing itself happens in a background thread (``Stager``). Local staging
(for DuckDB) writes with pyarrow; S3 staging (for Redshift's COPY) writes with awswrangler, as the production
design has it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.schema import STAGED, TYPES, Table
from pipeline.load.staged import Staged, StagedTable

if TYPE_CHECKING:
    import boto3


def to_arrow(frame: pd.DataFrame, table: Table) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, schema=table.arrow_schema(), preserve_index=False, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
        raise TypeError(f"{table.name}: frame does not match the schema: {exc}") from exc


def run_location(root: str, run_id: str) -> str:
    return f"{root.rstrip('/')}/{run_id}"


def _write_s3(arrow: pa.Table, table: Table, path: str, session: boto3.Session | None) -> None:
    import awswrangler as wr

    wr.s3.to_parquet(
        # Conformed already (``to_arrow``), so awswrangler writes exactly the schema's types.
        df=arrow.to_pandas(types_mapper=pd.ArrowDtype),
        path=path,
        index=False,
        dtype={c.name: TYPES[c.kind].athena for c in table.columns},
        compression="snappy",
        boto3_session=session,
        # Microseconds: Redshift's TIMESTAMP precision, and no loss of the source's milliseconds.
        pyarrow_additional_kwargs={"coerce_timestamps": "us", "allow_truncated_timestamps": False},
    )


def _write_arrow(arrow: pa.Table, table: Table, path: str, session: boto3.Session | None = None) -> None:
    if path.startswith("s3://"):
        _write_s3(arrow, table, path, session)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # No column statistics: writes are ~20% faster, and a part holds one batch, read whole by the load.
    pq.write_table(arrow, path, compression="snappy", write_statistics=False)


def write_part(table: Table, frame: pd.DataFrame, path: str, session: boto3.Session | None = None) -> None:
    """One Parquet file typed as ``table``, on S3 (``s3://``) or a local disk."""
    _write_arrow(to_arrow(frame, table), table, path, session)


class Stager:
    """Writes frames batch by batch as ``<root>/<run_id>/<name>/part-NNNNN.parquet``.

    A frame is checked against its table's types and converted to Arrow where ``write`` is called, so a frame
    whose types drifted fails there; the Parquet file is then written by a background thread while the caller
    transforms the next batch (pyarrow's writer and S3 uploads let go of the interpreter; at 10M events the
    writes were a fifth of the transforms' thread). ``flush`` waits for what is pending and raises what failed:
    the engines call it before each batch's writes, so at most one batch's tables wait in memory, and ``finish``
    calls it before anything is loaded. The warehouse's bulk load then reads every part of a relation at once
    (a COPY of its prefix on Redshift).
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
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._closed = False

    def write(self, name: str, frame: pd.DataFrame, part: str) -> str:
        """Convert one part now and write it in the background; return its path (also called from Ray tasks).

        The Arrow table may share memory with ``frame``: the frame must not be changed in place until ``flush``
        (no transform changes a frame it has handed over)."""
        if self._closed:
            raise RuntimeError(f"staging {self.location}: written to after it was finished or closed")
        path = f"{self.location}/{name}/part-{part}.parquet"
        table = STAGED[name]
        arrow = to_arrow(frame, table)

        def job() -> None:
            try:
                self.retry(f"staging {path}", lambda: _write_arrow(arrow, table, path, self.session))
            except BaseException as exc:  # raised in the caller's thread later: say which part it was
                exc.add_note(f"while staging {path}")
                raise

        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")
        self._pending.append(self._writer.submit(job))
        return path

    def flush(self) -> None:
        """Wait for every write begun; raise the first that failed (after the others have ended)."""
        pending, self._pending = self._pending, []
        errors = [e for e in (f.exception() for f in pending) if e is not None]
        if errors:
            raise errors[0]

    def close(self) -> None:
        """End the writer thread once the write under way has ended (on S3, with its retries); writes not begun
        are dropped, and so are errors: a failed run stops here, with its own error. Final: a closed stager
        writes nothing more."""
        self._closed = True
        if self._writer is not None:
            self._writer.shutdown(wait=True, cancel_futures=True)
            self._writer = None
        self._pending = []

    def record(self, name: str, path: str, rows: int) -> None:
        self.files[name].append(path)
        self.rows[name] += rows

    def add(self, frames: dict[str, pd.DataFrame]) -> None:
        for name, frame in frames.items():
            if not frame.empty:
                self.record(name, self.write(name, frame, f"{len(self.files[name]):05d}"), len(frame))

    def finish(self) -> Staged:
        """What was staged, once it is all written; the stager is closed either way."""
        try:
            self.flush()
        finally:
            self.close()
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
