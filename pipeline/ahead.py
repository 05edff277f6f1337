"""The sources listed while the process starts, so a run's first I/O overlaps its imports.

Importing pandas, pyarrow and DuckDB takes 0.5-0.8 s of a run's start; listing 50,000 song files takes 0.4-0.6 s,
most of it waiting on the file system (or, on S3, on list requests). A thread started before those imports
lists both sources meanwhile, and the run takes its listings instead of listing again. This module imports
nothing heavy, so starting the thread costs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DEMO_ROOT, Config

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from .discover import SourceFile


class Listings:
    """Listings of source URLs, made in a background thread started at once."""

    def __init__(self, urls: list[str], storage_options: dict[str, Any]):
        self._pending: dict[str, Future[tuple[AbstractFileSystem, list[SourceFile]]]] = {u: Future() for u in urls}
        self._options = storage_options
        threading.Thread(target=self._list, args=(list(self._pending.items()),), name="list-ahead", daemon=True).start()

    def _list(self, jobs: list[tuple[str, Future[tuple[AbstractFileSystem, list[SourceFile]]]]]) -> None:
        from .discover import discover

        for url, future in jobs:
            try:
                future.set_result(discover(url, self._options))
            except BaseException as exc:  # the run lists it again itself, with its retries and its errors
                future.set_exception(exc)

    def first_attempt(self, url: str) -> Callable[[], tuple[AbstractFileSystem, list[SourceFile]]] | None:
        """The listing of ``url`` made ahead, as the first attempt of the run's own listing: it returns the
        listing or raises the error listing met, which the run's retries then treat like any first failure
        (a transient fault is retried and logged as before). None if ``url`` was not listed ahead."""
        future = self._pending.pop(url, None)
        return None if future is None else future.result


def list_ahead(cfg: Config) -> Listings | None:
    """Start listing the run's sources, logs first (their parsing starts first). Not where the run may first
    generate the demo dataset into empty demo folders: a listing made before that would miss it."""
    logs, songs = cfg.source.log_data, cfg.source.song_data
    if cfg.demo.generate_if_empty and DEMO_ROOT in (Path(logs).parent, Path(songs).parent):
        return None
    return Listings([logs, songs], cfg.storage_options())
