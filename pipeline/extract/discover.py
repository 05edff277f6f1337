"""Find the data files under a source prefix, with one flat listing.

On S3 a flat listing (ListObjectsV2 with no delimiter) returns 1,000 keys a request; walking folder by
folder would cost one request per folder of the A/B/C song layout.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, NamedTuple

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from pipeline.core.errors import SourceError
from pipeline.extract.formats import DEFAULT_FORMAT, suffix_of

__all__ = ["SourceError", "SourceFile", "compression", "discover", "is_data_file", "open_fs", "spread", "why_not_data"]

log = logging.getLogger(__name__)


class SourceFile(NamedTuple):
    """One file of a source. A named tuple, not a frozen dataclass: a night makes tens of thousands of them from
    the listing while the run imports pandas, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per
    field) costs several times more."""

    path: str  # as the filesystem names it (no protocol), used to fetch
    url: str  # with protocol, used in reports, rejects and the ledger
    size: int
    # ETag on object stores, modification time locally: what tells a changed file from a seen one.
    version: str

    @property
    def weight(self) -> int:
        """About how many bytes of JSON the file holds: what batches are sized by, and what a file that cannot
        be read at all weighs against ``rejects.max_fraction``. A compressed file counts ``EXPANSION`` times
        its size, so a lost ``.json.gz`` day weighs like a lost ``.json`` day, and a batch of them fits memory."""
        return self.size * EXPANSION if compression(self.path) else self.size


# JSON lines compress about 10x with gzip (the real sample's log days: 10.3x; bzip2 14.5x).
EXPANSION = 10


# What a listing without a format looks for (the notebooks, the lister that starts before the run knows its sources).
DEFAULT_SUFFIX = suffix_of(DEFAULT_FORMAT)


def compression(path: str) -> str | None:
    """The compression fsspec infers from a file's name (``.json.gz`` -> gzip), if any."""
    if path.endswith(".json"):  # nearly every file, without fsspec's slower lookup
        return None
    return _compression(path.rsplit(".", 1)[-1])


@functools.lru_cache(maxsize=64)
def _compression(suffix: str) -> str | None:
    from fsspec.compression import compr
    from fsspec.utils import infer_compression

    name = infer_compression("x." + suffix)
    return name if name is not None and name in compr else None


def open_fs(url: str, storage_options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """The filesystem for ``url``; storage options (S3 endpoint, pool size) apply to remote URLs only."""
    remote = "://" in url and not url.startswith("file://")
    fs, path = fsspec.core.url_to_fs(url, **((storage_options or {}) if remote else {}))
    return fs, path


def _scan_local(root: str, skipped: list[tuple[str, str]], suffix: str) -> list[tuple[str, int, str]]:
    """Every file under a local folder as (path, size, modification time), with os.scandir (several times faster
    than ``fs.find(detail=True)``), and a tuple rather than a dict per file.

    Entries that cannot be examined (a symlink loop, a folder without permission) are noted in ``skipped``
    rather than failing the listing.
    """
    out: list[tuple[str, int, str]] = []
    found = out.append
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if folder == root:
                raise
            skipped.append((folder, f"folder cannot be listed: {exc.strerror or exc}"))
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=True):
                    stack.append(e.path)
                    if "." in e.name and is_data_file(e.name, suffix):
                        skipped.append((e.path, "a folder named like a data file; what it holds is read as usual"))
                elif e.is_file(follow_symlinks=True):
                    st = e.stat()
                    # The ledger's version as earlier runs recorded it (a time of 0 gave no version).
                    found((e.path, st.st_size, str(st.st_mtime_ns) if st.st_mtime_ns else ""))
                else:
                    try:
                        os.stat(e.path)
                        skipped.append((e.path, "not a regular file"))
                    except OSError as exc:
                        skipped.append((e.path, f"cannot be examined: {exc.strerror or exc}"))
            except OSError as exc:
                skipped.append((e.path, f"cannot be examined: {exc.strerror or exc}"))
    return out


def _remote_files(fs: AbstractFileSystem, root: str) -> list[tuple[str, int, str]]:
    """Every object under ``root`` as (path, size, version): the ETag where the store gives one."""
    out: list[tuple[str, int, str]] = []
    for path, info in fs.find(root, detail=True).items():
        if info.get("type") == "directory":
            continue
        version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or ""
        out.append((path, int(info.get("size") or 0), str(version)))
    return out


def why_not_data(relative: str, suffix: str = DEFAULT_SUFFIX) -> str | None:
    """None for a data file: named ``*<suffix>`` (or compressed, ``*.json.gz`` and what else fsspec infers from
    a name) outside hidden folders (``.ipynb_checkpoints/``, ``_temporary/``); otherwise why it is not read."""
    if (
        relative.endswith(suffix)
        and not relative.startswith((".", "_"))
        and "/." not in relative
        and "/_" not in relative
    ):
        return None  # nearly every file, without splitting its path
    parts = relative.split("/")
    hidden = next((p for p in parts[:-1] if p.startswith((".", "_"))), None)
    if hidden is not None:
        return f"inside the hidden folder {hidden}/"
    name = parts[-1]
    if name.startswith((".", "_")):
        return "a hidden or marker file"
    base = name[: name.rindex(".")] if compression(name) else name
    if base.endswith(suffix):
        return None
    return f"not *{suffix} (nor compressed *{suffix})"


def spread(files: list[SourceFile], at_most: int, max_bytes: int | None = None) -> list[SourceFile]:
    """At most ``at_most`` of ``files``, evenly spread over the listing (all of them when there are no more), and
    no more of them than fit in ``max_bytes`` (at least one): what a notebook reads, so pointed at a production
    bucket it looks at a sample instead of fetching everything."""
    if len(files) > at_most:
        step = len(files) / at_most
        files = [files[int(i * step)] for i in range(at_most)]
    if max_bytes is None:
        return files
    kept: list[SourceFile] = []
    total = 0
    for f in files:
        if kept and total + f.size > max_bytes:
            break
        kept.append(f)
        total += f.size
    return kept


def is_data_file(relative: str, suffix: str = DEFAULT_SUFFIX) -> bool:
    return why_not_data(relative, suffix) is None


def _protocol(fs: AbstractFileSystem) -> str:
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return "" if proto in ("file", "local") else f"{proto}://"


def discover(
    url: str, storage_options: dict[str, Any] | None = None, suffix: str = DEFAULT_SUFFIX
) -> tuple[AbstractFileSystem, list[SourceFile]]:
    """List every data file (named ``*<suffix>``, see ``formats``) under ``url``, sorted by path so runs are
    deterministic."""
    fs, root = open_fs(url, storage_options)
    root = root.rstrip("/")
    skipped: list[tuple[str, str]] = []
    try:
        if not fs.isdir(root):
            raise SourceError(f"{url}: not found or not a folder")
        listing = _scan_local(root, skipped, suffix) if isinstance(fs, LocalFileSystem) else _remote_files(fs, root)
    except SourceError:
        raise
    except (FileNotFoundError, PermissionError, OSError) as exc:
        raise SourceError(f"{url}: cannot list ({exc})") from exc
    prefix = _protocol(fs)
    start = len(root)
    files: list[SourceFile] = []
    for path, size, version in listing:
        reason = why_not_data(path[start:].lstrip("/"), suffix)
        if reason is not None:
            skipped.append((path, reason))
            continue
        files.append(SourceFile(path=path, url=prefix + path, size=size, version=version))
    files.sort(key=lambda f: f.path)
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for path, reason in sorted(skipped):
            by_reason.setdefault(reason, []).append(path)
        for reason, paths in by_reason.items():
            shown = ", ".join(prefix + p for p in paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            log.warning("%s: %d not read (%s): %s", url, len(paths), reason, shown)
    return fs, files
