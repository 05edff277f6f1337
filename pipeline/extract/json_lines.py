"""The JSON-lines source format: bytes to Arrow rows in one pass, bad lines set aside with their line number.

Parsing file by file (``pd.read_json`` per file) costs a parser start-up per file and is thousands of times
slower on tens of thousands of small song files. Instead the fetched bytes are joined into one JSON-lines
buffer and parsed once by pyarrow with an explicit schema (exact float parsing, so ``length = duration``
matching works). Only when that parse fails, or returns a different number of rows than there are lines,
is the batch bisected, first by file and then by line, so one bad line costs a few extra parses and
every good record around it is kept. Each row carries the file and line it came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from pipeline.extract.fetch import Segment
from pipeline.extract.records import Parsed, Reject, raw_text
from pipeline.extract.sources import SourceSpec

_ROW_SUFFIX = re.compile(r" in row \d+$")


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
            Reject(self.spec.name, self.names[piece.file], line, reason, raw_text(raw), len(raw), _objects(raw, line))
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
                Reject(
                    spec.name, names[seg.file], first + n, _reason(exc), raw_text(line), len(line), _objects(line, 1)
                )
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
        rejects.append(Reject(spec.name, names[i], None, f"not JSON: {exc}", raw_text(data), len(data)))
        return None
    if not all(isinstance(x, dict) for x in items):
        rejects.append(Reject(spec.name, names[i], None, "JSON array holds non-objects", raw_text(data), len(data)))
        return None
    if not items:
        rejects.append(Reject(spec.name, names[i], None, "empty JSON array", raw_text(data), len(data)))
        return None
    body = b"\n".join(orjson.dumps(x) for x in items)
    return _Piece(i, 1, body, len(items))


def _raw_line(pieces: Sequence[_Piece], file: int, line: int, cache: dict[int, list[bytes]]) -> bytes:
    for k, piece in enumerate(pieces):
        if piece.file != file or not piece.first_line <= line < piece.first_line + piece.lines:
            continue
        if k not in cache:
            cache[k] = piece.data.split(b"\n")
        return cache[k][line - piece.first_line]
    return b""


class JsonLines:
    """JSON objects, one per line (a file holding one JSON array of objects is read as its elements)."""

    def parse(
        self, spec: SourceSpec, names: Sequence[str], segments: Sequence[Segment], sizes: Sequence[int]
    ) -> Parsed:
        prepared = _prepare(spec, names, segments, sizes)
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
        parser.tables.clear()
        cache: dict[int, list[bytes]] = {}
        return Parsed(
            table=table,
            file_ids=file_ids,
            line_nos=line_nos,
            rejects=parser.rejects,
            bytes_read=prepared.bytes_read,
            raw_line=lambda file, line: _raw_line(prepared.pieces, file, line, cache),
            unread=prepared.unread,
            vanished=prepared.vanished,
            whole=prepared.whole,
        )


FORMAT = JsonLines()
