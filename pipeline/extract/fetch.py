"""Source files to bytes: many files fetched concurrently, large ones streamed in line-aligned segments.

A file that cannot be read is rejected whole and kept out of the ledger so the next run tries it again; a
file gone since the listing is treated as no longer listed; a transient fault is retried (``ops/retry.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from typing import Any, TypeVar

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from pipeline.core.errors import FetchError, SourceError
from pipeline.extract.discover import SourceFile, compression

R = TypeVar("R")


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


def segment(i: int, f: SourceFile, data: bytes | Unreadable) -> Segment:
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
        return [segment(i, files[i], d) for i, d in zip(group, datas, strict=True)]

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
