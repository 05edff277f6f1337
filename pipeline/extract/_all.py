"""Bytes to typed frames: fetch many files concurrently, parse them in one pass, set bad records aside.

Parsing file by file (``pd.read_json`` per file) costs a parser start-up per file and is thousands of times
slower on tens of thousands of small song files. Instead the fetched bytes are joined into one JSON-lines
buffer and parsed once by pyarrow with an explicit schema (exact float parsing, so ``length = duration``
matching works). Only when that parse fails, or returns a different number of rows than there are lines,
is the batch bisected, first by file and then by line, so one bad line costs a few extra parses and
every good record around it is kept. Each row carries the file and line it came from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from pipeline.core.errors import FetchError, SourceError
from pipeline.extract.discover import SourceFile, compression
from pipeline.extract.sources import MAX_EPOCH_MS, MIN_EPOCH_MS, SourceSpec
from pipeline.ops.progress import Progress

log = logging.getLogger(__name__)
R = TypeVar("R")

FILE_COL = "_file"
LINE_COL = "_line"

_ROW_SUFFIX = re.compile(r" in row \d+$")


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


# Errors that no retry can cure: the file is not readable as it stands. It is rejected whole and left out of
# the ledger, so the next run tries it again (a permission fixed, a mount back). A file not found was listed
# and is gone (a retention job, an upstream move): no record of it was bad, so it is not rejected at all.
_UNREADABLE = (PermissionError, IsADirectoryError, NotADirectoryError, FileNotFoundError)
_ELOOP = 40


@dataclass(frozen=True)
class Unreadable:
    reason: str
    # Gone since the listing: treated as no longer listed, not as a rejected file.
    vanished: bool = False


def _denied(fs: AbstractFileSystem, url: str, exc: BaseException) -> None:
    """On an object store, access denied is the credentials' or the policy's fault, not the file's: it would be
    the same for every file, so the run stops at once (exit 5) instead of rejecting the whole source."""
    if isinstance(exc, PermissionError) and not isinstance(fs, LocalFileSystem):
        raise SourceError(f"access denied reading {url}: {exc}") from exc


def _unreadable(exc: BaseException) -> Unreadable | None:
    if isinstance(exc, _UNREADABLE) or (isinstance(exc, OSError) and exc.errno == _ELOOP):
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        vanished = isinstance(exc, FileNotFoundError)
        return Unreadable(f"{'vanished' if vanished else 'cannot read'}: {type(exc).__name__}: {text}", vanished)
    return None


def _codecs() -> dict[str, Callable[..., object]]:
    from fsspec.compression import compr

    return {k: v for k, v in compr.items() if k is not None}


def _decompress(path: str, data: bytes) -> bytes:
    codec = compression(path)
    if codec is None:
        return data
    with _codecs()[codec](BytesIO(data), mode="rb") as fh:  # type: ignore[attr-defined]
        out: bytes = fh.read()
    return out


def fetch(
    fs: AbstractFileSystem,
    files: Sequence[SourceFile],
    concurrency: int = 64,
    on_progress: Callable[[int], None] | None = None,
) -> list[bytes | Unreadable]:
    """Read every file's bytes, many requests in flight at once (decompressed when the name says so).

    Object stores answer small GETs in tens of milliseconds, so throughput comes from concurrency, not
    from the client: async filesystems (s3fs) get one batched ``cat`` over their own event loop; others
    get a thread pool, since file reads release the GIL. A file that cannot be read as it stands comes back
    as ``Unreadable``; anything else raises ``FetchError``, for the caller to retry.
    """
    paths = [f.path for f in files]
    if not paths:
        return []
    out: list[bytes | Unreadable] = []
    if getattr(fs, "async_impl", False):
        for start in range(0, len(paths), 4096):
            chunk = paths[start : start + 4096]
            got = fs.cat(chunk, on_error="return", batch_size=concurrency)
            for path in chunk:
                data = got[path]
                if isinstance(data, BaseException):
                    _denied(fs, files[len(out)].url, data)
                    bad = _unreadable(data)
                    if bad is None:
                        raise FetchError(f"cannot read {files[len(out)].url}: {data}") from data
                    out.append(bad)
                else:
                    out.append(data)
            if on_progress:
                on_progress(len(chunk))
    elif isinstance(fs, LocalFileSystem):
        # Plain sequential system calls: on a local disk a small read is a few microseconds, and fsspec's file
        # objects, a thread pool (GIL hand-offs) and even open() (a buffered file object) cost more than the read.
        for n, f in enumerate(files, start=1):
            try:
                out.append(_read_local(f.path, f.size))
            except OSError as exc:
                bad = _unreadable(exc)
                if bad is None:
                    raise FetchError(f"cannot read {f.url}: {exc}") from exc
                out.append(bad)
            if on_progress and n % 2048 == 0:
                on_progress(2048)
        if on_progress:
            on_progress(len(out) % 2048)
    else:

        def read(i: int) -> bytes | Unreadable:
            try:
                with fs.open(paths[i], "rb") as fh:
                    data: bytes = fh.read()
                    return data
            except OSError as exc:
                _denied(fs, files[i].url, exc)
                bad = _unreadable(exc)
                if bad is None:
                    raise FetchError(f"cannot read {files[i].url}: {exc}") from exc
                return bad

        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, 32))) as pool:
            out = list(pool.map(read, range(len(paths))))
        if on_progress:
            on_progress(len(out))
    return [d if isinstance(d, Unreadable) else _decompressed(f, d) for f, d in zip(files, out, strict=True)]


def _read_local(path: str, size: int) -> bytes:
    """A local file's bytes, read to its end whatever size the listing saw (it may have grown or shrunk since),
    and whatever a read returns at once (at most 2 GiB on Linux; less on some network file systems)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, size + 1)
        # Exactly the listed size (nearly always): a read that stopped short there, at the end, without asking
        # the kernel again (a second read per song file costs 50,000 system calls).
        if len(data) == size:
            return data
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _decompressed(f: SourceFile, data: bytes) -> bytes | Unreadable:
    try:
        return _decompress(f.path, data)
    except Exception as exc:  # a truncated or corrupt archive: its content is bad, not its access
        return Unreadable(f"cannot decompress ({compression(f.path)}): {exc}")


@dataclass(slots=True)
class Segment:
    """Bytes of one file: the whole file, or a run of whole lines of a file too large for one batch."""

    file: int  # index into the run's file list
    first_line: int
    data: bytes
    whole: bool = True
    # Set when the file could not be read or decompressed: the whole file is rejected for this reason.
    problem: str | None = None
    # The file could not be read at all: leave it out of the ledger, so the next run reads it again.
    unread: bool = False
    # The file was gone when it was to be read: nothing of it is rejected, nothing of it is loaded.
    vanished: bool = False


def _segment(i: int, f: SourceFile, data: bytes | Unreadable) -> Segment:
    if isinstance(data, Unreadable):
        if data.vanished:
            return Segment(i, 1, b"", vanished=True)
        # Not readable as it stands (access, or an archive cut short): retried by the next run, like a file whose
        # read failed, and a loaded one keeps what it had.
        return Segment(i, 1, b"", problem=data.reason, unread=True)
    return Segment(i, 1, data)


Retry = Callable[[str, Callable[[], R]], R]


def _no_retry(step: str, fn: Callable[[], R]) -> R:
    return fn()


def _stream_file(fs: AbstractFileSystem, index: int, f: SourceFile, block: int, retry: Retry) -> Iterator[Segment]:
    """A file larger than a batch, as line-aligned chunks of about ``block`` bytes, read sequentially.

    Each read goes through ``retry``: a transient fault reopens the file at the byte it had reached, so a long
    read does not start over. Compressed files are decompressed as they stream.
    """
    codec = compression(f.path)
    handle: Any = None
    pos = 0

    def read_next() -> bytes:
        nonlocal handle
        try:
            if handle is None:
                if codec is None and isinstance(fs, LocalFileSystem):
                    handle = open(f.path, "rb")  # noqa: SIM115  (kept open across reads; closed in ``finally``)
                else:
                    handle = fs.open(f.path, "rb", block_size=min(block, 64 << 20), compression=codec)
                if pos:
                    handle.seek(pos)
            chunk: bytes = handle.read(block)
            return chunk
        except Exception as exc:  # not only OSError: the SDK's timeouts are its own classes
            if handle is not None:
                with contextlib.suppress(Exception):  # a handle broken by the fault may not close cleanly
                    handle.close()
                handle = None
            _denied(fs, f.url, exc)
            if pos == 0 and _unreadable(exc) is not None:
                raise
            raise FetchError(f"cannot read {f.url} at byte {pos}: {exc}") from exc

    carry = b""
    line = 1
    try:
        while True:
            try:
                chunk = retry(f"reading {f.url}", read_next)
            except OSError as exc:
                bad = _unreadable(exc)
                if bad is None or pos:
                    raise
                if bad.vanished:
                    yield Segment(index, 1, b"", whole=False, vanished=True)
                else:
                    yield Segment(index, 1, b"", whole=False, problem=bad.reason, unread=True)
                return
            if not chunk:
                break
            pos += len(chunk)
            data = carry + chunk
            cut = data.rfind(b"\n")
            if cut == -1 and len(data) < 4 * block:
                carry = data  # one very long line: keep reading until it ends
                continue
            if cut == -1:
                cut = len(data)
            body, carry = data[:cut], data[cut + 1 :]
            yield Segment(index, line, body, whole=False)
            line += body.count(b"\n") + 1
        if carry:
            yield Segment(index, line, carry, whole=False)
    finally:
        if handle is not None:
            handle.close()


def read_batches(
    fs: AbstractFileSystem,
    files: Sequence[SourceFile],
    batch_bytes: int,
    concurrency: int = 64,
    retry: Retry = _no_retry,
) -> Iterator[list[Segment]]:
    """The files' bytes in batches of about ``batch_bytes``, so memory depends on the batch, not the input.

    Small files are grouped and fetched concurrently (a transient fault refetches the group, through
    ``retry``); a file larger than a batch is streamed in line-aligned chunks. Files keep their order.
    """
    group: list[int] = []
    size = 0

    def flush() -> list[Segment]:
        names = ", ".join(files[i].url for i in group[:2]) + (" ..." if len(group) > 2 else "")
        datas = retry(f"reading {names}", lambda: fetch(fs, [files[i] for i in group], concurrency))
        return [_segment(i, files[i], d) for i, d in zip(group, datas, strict=True)]

    for i, f in enumerate(files):
        if f.weight > batch_bytes:
            if group:
                yield flush()
                group, size = [], 0
            yield from ([seg] for seg in _stream_file(fs, i, f, batch_bytes, retry))
            continue
        if group and size + f.weight > batch_bytes:
            yield flush()
            group, size = [], 0
        group.append(i)
        size += f.weight
    if group:
        yield flush()


# --------------------------------------------------------------------------------------------- parse


@dataclass(slots=True)
class _Piece:
    """A run of lines of one file, parsed together."""

    file: int
    first_line: int
    data: bytes
    lines: int


@dataclass
class _Prepared:
    """A batch checked and cut into pieces, ready to parse: line counts, UTF-8 checks, whole-file rejects.

    Everything here works on bytes alone; the parser then only ever sees pieces whose lines are counted,
    so every parsed row can be traced back to its file and line.
    """

    pieces: list[_Piece]
    rejects: list[Reject]
    bytes_read: int
    unread: set[int] = field(default_factory=set)
    vanished: set[int] = field(default_factory=set)
    whole: set[int] = field(default_factory=set)


def _count_lines(data: bytes) -> int:
    # A batch's bytes are counted by numpy, which lets go of the GIL (bytes.count holds it, and the transforms on
    # the main thread wait); a small file is counted faster in place.
    if len(data) < 1 << 16:
        newlines = data.count(b"\n")
    else:  # in slices: a comparison over the whole batch would allocate its size again
        view = np.frombuffer(data, np.uint8)
        newlines = sum(int(np.count_nonzero(view[i : i + _SLICE] == 0x0A)) for i in range(0, len(view), _SLICE))
    return newlines + (0 if data.endswith(b"\n") else 1)


_SLICE = 8 << 20


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, by Arrow's validation: faster than a Python decode, and without the GIL."""
    if len(data) < 1 << 16:
        return data.isascii() or _decodes(data)
    offsets = pa.py_buffer(np.array([0, len(data)], np.int64))
    raw = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        raw.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _objects(raw: bytes, line: int | None) -> int:
    """1 where a rejected line is one well-formed JSON object (it failed a type or a check: one record lost,
    however long); 0 where its bytes are not one (a broken line, a day whose line breaks were lost), which then
    weigh the records their size would hold (``rejects.py``)."""
    if line is None:
        return 0
    try:
        return 1 if isinstance(json.loads(raw), dict) else 0
    except (ValueError, RecursionError):
        return 0


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 ({exc.reason} at byte {exc.start} of the line)"
    return _ROW_SUFFIX.sub("", str(exc))


def _raw(data: bytes) -> str:
    # backslashreplace keeps invalid bytes visible and recoverable instead of silently replacing them.
    return data.decode("utf-8", errors="backslashreplace")


# pyarrow parses blocks of this size in parallel: small enough that two cores stay busy to the end of a
# file, large enough that per-block overhead is noise (docs/decisions.md).
_BLOCK = 16 << 20
# Small files are joined into one buffer of about this size per parse; larger pieces are parsed as they
# are, so a batch of big files is never copied into one buffer.
_GROUP = 16 << 20


def _groups(pieces: Sequence[_Piece]) -> Iterator[list[_Piece]]:
    group: list[_Piece] = []
    size = 0
    for piece in pieces:
        group.append(piece)
        size += len(piece.data)
        if size >= _GROUP:
            yield group
            group, size = [], 0
    if group:
        yield group


class _Parser:
    def __init__(self, spec: SourceSpec, names: Sequence[str], rejects: list[Reject] | None = None):
        self.spec = spec
        self.names = names
        self.parse_options = pj.ParseOptions(explicit_schema=spec.schema, unexpected_field_behavior="ignore")
        self.tables: list[pa.Table] = []
        self.file_ids: list[np.ndarray] = []
        self.line_nos: list[np.ndarray] = []
        self.rejects: list[Reject] = rejects if rejects is not None else []

    def _read(self, data: bytes, block: int = _BLOCK) -> pa.Table:
        options = pj.ReadOptions(block_size=max(1 << 20, min(len(data) + 1, block)), use_threads=True)
        try:
            return pj.read_json(BytesIO(data), read_options=options, parse_options=self.parse_options)
        except pa.ArrowInvalid as exc:
            # A record longer than a block: the block is a buffer size, not a limit on the input.
            if "straddl" in str(exc) and len(data) + 1 > options.block_size:
                return self._read(data, len(data) + 1)
            raise

    def _accept(self, table: pa.Table, pieces: Sequence[_Piece]) -> None:
        counts = np.fromiter((p.lines for p in pieces), dtype=np.int64, count=len(pieces))
        starts = np.cumsum(counts) - counts
        firsts = np.fromiter((p.first_line for p in pieces), dtype=np.int64, count=len(pieces))
        total = int(counts.sum())
        self.tables.append(table)
        self.file_ids.append(np.repeat(np.fromiter((p.file for p in pieces), np.int32, len(pieces)), counts))
        self.line_nos.append(
            (np.arange(total) - np.repeat(starts, counts) + np.repeat(firsts, counts)).astype(np.int32)
        )

    def parse_all(self, pieces: Sequence[_Piece]) -> None:
        for group in _groups(pieces):
            self.parse(group)

    def parse(self, pieces: Sequence[_Piece]) -> None:
        if not pieces:
            return
        data = pieces[0].data if len(pieces) == 1 else b"\n".join(p.data for p in pieces)
        error: Exception | None = None
        try:
            table = self._read(data)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            error = exc
        else:
            if table.num_rows == sum(p.lines for p in pieces):
                self._accept(table, pieces)
                return
        del data
        # Either a parse error, or rows and lines disagree (blank lines, two objects on one line),
        # so rows cannot be traced to lines: narrow down.
        if len(pieces) > 1:
            mid = len(pieces) // 2
            self.parse(pieces[:mid])
            self.parse(pieces[mid:])
            return
        piece = pieces[0]
        if piece.lines > 1:
            if piece.first_line == 1 and error is not None and not self._looks_like_json(piece.data):
                self._reject(piece, None, "not JSON: the file does not start with '{'", piece.data)
                return
            lines = piece.data.split(b"\n")
            mid = len(lines) // 2
            self.parse(
                [
                    _Piece(piece.file, piece.first_line, b"\n".join(lines[:mid]), mid),
                    _Piece(piece.file, piece.first_line + mid, b"\n".join(lines[mid:]), len(lines) - mid),
                ]
            )
            return
        # A single line.
        if not piece.data.strip():
            return  # a blank line is not a record
        if error is None:
            # Two or more objects on one line: every row comes from this line.
            n = table.num_rows
            self.tables.append(table)
            self.file_ids.append(np.full(n, piece.file, np.int32))
            self.line_nos.append(np.full(n, piece.first_line, np.int32))
            return
        self._reject(piece, piece.first_line, _reason(error), piece.data)

    @staticmethod
    def _looks_like_json(data: bytes) -> bool:
        head = data[:4096].lstrip()
        return head.startswith((b"{", b"["))

    def _reject(self, piece: _Piece, line: int | None, reason: str, raw: bytes) -> None:
        self.rejects.append(
            Reject(self.spec.name, self.names[piece.file], line, reason, _raw(raw), len(raw), _objects(raw, line))
        )


def _prepare(
    spec: SourceSpec, names: Sequence[str], segments: Sequence[Segment], sizes: Sequence[int] | None = None
) -> _Prepared:
    """Count lines, check UTF-8 and set aside empty or unusable files, without parsing anything."""
    pieces: list[_Piece] = []
    rejects: list[Reject] = []
    unread: set[int] = set()
    vanished: set[int] = set()
    problem_bytes = 0
    for seg in segments:
        i, data = seg.file, seg.data
        if seg.vanished:
            vanished.add(i)
            continue
        if seg.problem is not None:
            lost = sizes[i] if sizes else 0
            rejects.append(Reject(spec.name, names[i], None, seg.problem, "", lost))
            problem_bytes += lost
            if seg.unread:
                unread.add(i)
            continue
        # A whole file starting with '{' (nearly every one) is neither empty nor an array: no copy to strip it.
        if seg.whole and data[:1] != b"{":
            stripped = data.strip()
            if not stripped:
                rejects.append(Reject(spec.name, names[i], None, "empty file", "", 0))  # no record lost
                continue
            if stripped.startswith(b"["):
                piece = _explode_array(i, data, spec, names, rejects)
                if piece is not None:
                    pieces.append(piece)
                continue
        # pyarrow does not validate UTF-8 inside string values; a bad byte would surface much later.
        if not _is_utf8(data):
            pieces.extend(_valid_utf8_runs(seg, spec, names, rejects))
            continue
        pieces.append(_Piece(i, seg.first_line, data, _count_lines(data)))
    # A file that could not be read weighs its size: what was read and what was lost are one total.
    whole = {seg.file for seg in segments if seg.whole}
    return _Prepared(pieces, rejects, sum(len(seg.data) for seg in segments) + problem_bytes, unread, vanished, whole)


def _valid_utf8_runs(seg: Segment, spec: SourceSpec, names: Sequence[str], rejects: list[Reject]) -> Iterator[_Piece]:
    """Reject the lines of a segment that are not UTF-8; yield the runs of lines between them."""
    lines = seg.data.split(b"\n")
    start = 0
    first = seg.first_line
    for n, line in enumerate(lines):
        try:
            line.decode("utf-8")
            continue
        except UnicodeDecodeError as exc:
            rejects.append(
                Reject(spec.name, names[seg.file], first + n, _reason(exc), _raw(line), len(line), _objects(line, 1))
            )
        if n > start:
            yield _Piece(seg.file, first + start, b"\n".join(lines[start:n]), n - start)
        start = n + 1
    if len(lines) > start:
        yield _Piece(seg.file, first + start, b"\n".join(lines[start:]), len(lines) - start)


def _explode_array(i: int, data: bytes, spec: SourceSpec, names: Sequence[str], rejects: list[Reject]) -> _Piece | None:
    """A file holding a JSON array of objects: each element becomes a record (line = element number)."""
    import orjson

    try:
        items = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        rejects.append(Reject(spec.name, names[i], None, f"not JSON: {exc}", _raw(data), len(data)))
        return None
    if not all(isinstance(x, dict) for x in items):
        rejects.append(Reject(spec.name, names[i], None, "JSON array holds non-objects", _raw(data), len(data)))
        return None
    if not items:
        rejects.append(Reject(spec.name, names[i], None, "empty JSON array", _raw(data), len(data)))
        return None
    body = b"\n".join(orjson.dumps(x) for x in items)
    return _Piece(i, 1, body, len(items))


# ---------------------------------------------------------------------------------------- validate


def pandas_type(t: pa.DataType) -> object:
    """The pandas type the pipeline's frames hold an Arrow column as: text as Arrow strings, integers as Int64."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pd.StringDtype("pyarrow")
    if pa.types.is_integer(t):
        return pd.Int64Dtype()
    return None


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
    return extract_segments(spec, files, [_segment(i, f, d) for i, (f, d) in enumerate(zip(files, got, strict=True))])


def _raw_line(pieces: Sequence[_Piece], file: int, line: int, cache: dict[int, list[bytes]]) -> bytes:
    for k, piece in enumerate(pieces):
        if piece.file != file or not piece.first_line <= line < piece.first_line + piece.lines:
            continue
        if k not in cache:
            cache[k] = piece.data.split(b"\n")
        return cache[k][line - piece.first_line]
    return b""


def extract_segments(spec: SourceSpec, files: Sequence[SourceFile], segments: Sequence[Segment]) -> Extracted:
    """Parse one batch of segments of ``files``; ``_file`` in the frame indexes ``files``."""
    return _extract_prepared(spec, files, _prepare(spec, [f.url for f in files], segments, [f.weight for f in files]))


def _extract_prepared(spec: SourceSpec, files: Sequence[SourceFile], prepared: _Prepared) -> Extracted:
    """Parse one prepared batch (see ``_prepare``) into a typed frame; invalid records go to ``rejects``."""
    files = list(files)
    names = [f.url for f in files]
    parser = _Parser(spec, names, prepared.rejects)
    parser.parse_all(prepared.pieces)
    if parser.tables:
        table = pa.concat_tables(parser.tables)
        file_ids = np.concatenate(parser.file_ids)
        line_nos = np.concatenate(parser.line_nos)
    else:
        table = spec.schema.empty_table()
        file_ids = np.zeros(0, np.int32)
        line_nos = np.zeros(0, np.int32)
    bad, reasons = _invalid_mask(table, spec)
    if bad.any():
        cache: dict[int, list[bytes]] = {}
        for row, reason in zip(np.flatnonzero(bad), reasons, strict=True):
            f, line = int(file_ids[row]), int(line_nos[row])
            raw = _raw_line(prepared.pieces, f, line, cache)
            parser.rejects.append(Reject(spec.name, names[f], line, reason, _raw(raw), len(raw), records=1))
        keep = ~bad
        table = table.filter(pa.array(keep))
        file_ids, line_nos = file_ids[keep], line_nos[keep]
    # One chunk per column: the parser gives one per block, and Arrow's take and filter are much slower over many
    # chunks than the copy costs. The chunks are let go before the frame is made, so the batch is held twice only
    # while it is copied.
    parser.tables.clear()
    table = table.combine_chunks()
    frame = _to_pandas(table)
    del table
    frame[FILE_COL] = file_ids
    frame[LINE_COL] = line_nos
    if parser.rejects:
        log.warning("%s: %d records rejected", spec.name, len(parser.rejects))
    return Extracted(
        spec=spec,
        files=files,
        frame=frame,
        rejects=parser.rejects,
        bytes_read=prepared.bytes_read,
        unread=prepared.unread,
        vanished=prepared.vanished,
        whole=prepared.whole,
    )
