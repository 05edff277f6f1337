"""The sources listed while the process starts, so a run's first I/O overlaps its imports.

Importing pandas, pyarrow and DuckDB takes 0.6-1.0 s of a run's start; listing 50,000 song files takes 0.4-0.6 s
of system calls and Python. Both want the interpreter: a thread listing beside the imports still held up a
night's run 0.6 s. So on Linux the local sources are listed by a forked helper process (forked before any thread
exists, it runs only ``discover``), which sends its listings back through a pipe; remote sources, whose listing
waits on the network, are listed by a thread. The run takes each listing as the first attempt of its own. This
module imports nothing heavy, so starting costs nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DEMO_ROOT, Config, is_url

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from .discover import SourceFile

Listing = tuple["AbstractFileSystem", list["SourceFile"]]


class Listings:
    """Listings of source URLs, begun at once in the background."""

    def __init__(self, urls: list[str], storage_options: dict[str, Any]):
        self._pending: dict[str, Future[Listing | None]] = {u: Future() for u in urls}
        self._child: int | None = None
        local = [u for u in urls if not is_url(u)]
        threaded = [u for u in urls if is_url(u)]
        if local and sys.platform == "linux" and threading.active_count() == 1:
            self._child = _fork_lister({u: self._pending[u] for u in local})
        if self._child is None:
            threaded = urls
        if threaded:
            jobs = [(u, self._pending[u]) for u in threaded]
            threading.Thread(target=_list, args=(jobs, storage_options), name="list-ahead", daemon=True).start()

    def first_attempt(self, url: str) -> Callable[[], Listing | None] | None:
        """The listing of ``url`` made ahead, as the first attempt of the run's own listing: it returns the
        listing, or raises the error listing met, which the run's retries then treat like any first failure
        (a transient fault is retried and logged as before). It returns None where the helper itself failed
        (killed, out of processes): the run then lists at once. None if ``url`` was not listed ahead."""
        future = self._pending.pop(url, None)
        return None if future is None else future.result

    def close(self) -> None:
        """Stop a helper still listing (the run ended early: another run held the lock, a config error)."""
        if self._child is not None:
            with contextlib.suppress(OSError):  # it has finished and been reaped already
                os.kill(self._child, signal.SIGTERM)
            self._child = None


def _list(jobs: list[tuple[str, Future[Listing | None]]], storage_options: dict[str, Any]) -> None:
    from .discover import discover

    for url, future in jobs:
        try:
            future.set_result(discover(url, storage_options))
        except Exception as exc:  # the run's own first attempt raises it: retried, or reported, as ever
            future.set_exception(exc)
        except BaseException:
            future.set_result(None)
            raise


def _fork_lister(pending: dict[str, Future[Listing | None]]) -> int | None:
    """List local URLs in a forked child, whose pid is returned; a thread here turns what it sends into their
    futures' results. None if no child could be started (the caller lists in a thread instead)."""
    urls = list(pending)
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory: list in this process
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the child: list, send, and leave without running anything of the parent's
        code = 0
        try:
            os.close(read)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C stops it with the run
            with os.fdopen(write, "wb") as out:
                from .discover import discover

                for url in urls:
                    try:
                        _, files = discover(url)
                        message: tuple[str, Any] = (url, [dataclasses.astuple(f) for f in files])
                    except Exception as exc:
                        message = (url, exc)
                    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
                    out.flush()
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write)

    def receive() -> None:
        from fsspec.implementations.local import LocalFileSystem

        from .discover import SourceFile

        try:
            with os.fdopen(read, "rb") as inbox:
                for _ in urls:
                    url, got = pickle.load(inbox)
                    if isinstance(got, BaseException):
                        pending[url].set_exception(got)
                    else:
                        pending[url].set_result((LocalFileSystem(), [SourceFile(*row) for row in got]))
        except Exception:  # the child died or was stopped: the run lists what is left itself
            pass
        finally:
            for future in pending.values():
                if not future.done():
                    future.set_result(None)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    threading.Thread(target=receive, name="list-ahead", daemon=True).start()
    return pid


def list_ahead(cfg: Config) -> Listings | None:
    """Start listing the run's sources, logs first (their parsing starts first). Not where the run may first
    generate the demo dataset into empty demo folders: a listing made before that would miss it."""
    logs, songs = cfg.source.log_data, cfg.source.song_data
    if cfg.demo.generate_if_empty and DEMO_ROOT in (Path(logs).parent, Path(songs).parent):
        return None
    return Listings([logs, songs], cfg.storage_options())
