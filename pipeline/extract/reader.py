"""Files to a validated frame: fetch, parse with the source's format, and set aside records that parsed but
cannot be used (a missing key, a time out of range, a value too long for its column).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from fsspec import AbstractFileSystem

from pipeline.extract.discover import SourceFile
from pipeline.extract.fetch import Segment, Unreadable, fetch, segment
from pipeline.extract.formats import FORMATS
from pipeline.extract.records import FILE_COL, LINE_COL, Extracted, Reject, SourceFormat, pandas_type, raw_text
from pipeline.extract.sources import MAX_EPOCH_MS, MIN_EPOCH_MS, SourceSpec
from pipeline.ops.progress import Progress

log = logging.getLogger(__name__)


def format_named(name: str) -> SourceFormat:
    """The registered format ``name`` (``formats.FORMATS``), its module imported on first use."""
    fmt: SourceFormat = importlib.import_module(FORMATS[name].module).FORMAT
    return fmt


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=pandas_type, self_destruct=True)


def _invalid_mask(table: pa.Table, spec: SourceSpec) -> tuple[np.ndarray, list[str]]:
    """Rows that parsed but cannot be used, and why (vectorised: one pass per rule)."""
    n = table.num_rows
    bad = np.zeros(n, dtype=bool)
    reasons = np.full(n, "", dtype=object)
    for name in spec.required:
        missing = table.column(name).is_null().to_numpy(zero_copy_only=False)
        reasons[missing & ~bad] = f"missing required field {name!r}"
        bad |= missing
    if spec.epoch_ms_field:
        col = table.column(spec.epoch_ms_field)
        out = pc.fill_null(pc.or_(pc.less(col, MIN_EPOCH_MS), pc.greater_equal(col, MAX_EPOCH_MS)), False)
        out_np = out.to_numpy(zero_copy_only=False)
        reasons[out_np & ~bad] = f"{spec.epoch_ms_field} out of range (epoch ms outside 2000-2100)"
        bad |= out_np
    for f in spec.schema:
        col = table.column(f.name)
        if pa.types.is_floating(f.type):
            # JSON has no NaN or Infinity; the parser takes them anyway, and no analyst wants them.
            odd = pc.fill_null(pc.invert(pc.is_finite(col)), False).to_numpy(zero_copy_only=False)
            reasons[odd & ~bad] = f"{f.name!r} is not a finite number"
            bad |= odd
        elif pa.types.is_string(f.type):
            # The same limit on every target: Redshift would fail the whole COPY on it, DuckDB would store it.
            limit = spec.records.column(spec.columns[f.name]).max_bytes
            if limit is not None and n:
                size = pc.fill_null(pc.binary_length(col), 0).to_numpy(zero_copy_only=False)
                long = size > limit
                if long.any():
                    for row in np.flatnonzero(long & ~bad):
                        reasons[row] = (
                            f"{f.name!r} is {int(size[row]):,} bytes, longer than the {limit:,} its column holds"
                        )
                    bad |= long
    return bad, list(reasons[bad])


def extract(
    spec: SourceSpec,
    fs: AbstractFileSystem,
    files: Sequence[SourceFile],
    concurrency: int = 64,
    datas: Sequence[bytes | Unreadable] | None = None,
) -> Extracted:
    """Fetch (unless ``datas`` is given) and parse ``files`` in one batch; invalid records go to ``rejects``."""
    files = list(files)
    got: Sequence[bytes | Unreadable]
    if datas is None:
        with Progress(f"fetching {spec.name}", total=len(files), unit="files") as bar:
            got = fetch(fs, files, concurrency, on_progress=bar.update)
    else:
        got = datas
    return extract_segments(spec, files, [segment(i, f, d) for i, (f, d) in enumerate(zip(files, got, strict=True))])


def extract_segments(spec: SourceSpec, files: Sequence[SourceFile], segments: Sequence[Segment]) -> Extracted:
    """Parse one batch of segments of ``files`` with the source's format; ``_file`` in the frame indexes ``files``."""
    files = list(files)
    names = [f.url for f in files]
    parsed = format_named(spec.format).parse(spec, names, segments, [f.weight for f in files])
    table, file_ids, line_nos, rejects = parsed.table, parsed.file_ids, parsed.line_nos, parsed.rejects
    bad, reasons = _invalid_mask(table, spec)
    if bad.any():
        for row, reason in zip(np.flatnonzero(bad), reasons, strict=True):
            f, line = int(file_ids[row]), int(line_nos[row])
            raw = parsed.raw_line(f, line)
            rejects.append(Reject(spec.name, names[f], line, reason, raw_text(raw), len(raw), records=1))
        keep = ~bad
        table = table.filter(pa.array(keep))
        file_ids, line_nos = file_ids[keep], line_nos[keep]
    # One chunk per column: the parser gives one per block, and Arrow's take and filter are much slower over many
    # chunks than the copy costs. The parser's chunks (and the batch's bytes) are let go before the frame is made,
    # so the batch is held twice only while it is copied.
    bytes_read, unread, vanished, whole = parsed.bytes_read, parsed.unread, parsed.vanished, parsed.whole
    del parsed
    table = table.combine_chunks()
    frame = _to_pandas(table)
    del table
    frame[FILE_COL] = file_ids
    frame[LINE_COL] = line_nos
    if rejects:
        log.warning("%s: %d records rejected", spec.name, len(rejects))
    return Extracted(
        spec=spec,
        files=files,
        frame=frame,
        rejects=rejects,
        bytes_read=bytes_read,
        unread=unread,
        vanished=vanished,
        whole=whole,
    )
