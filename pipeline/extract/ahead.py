"""The sources listed while the process starts, so a run's first I/O overlaps its imports.

Importing pandas, pyarrow and DuckDB and listing tens of thousands of song files are both most of a night's start,
and both want the interpreter, so a thread listing beside the imports gains little. So on Linux the local sources
are listed by a forked helper process (forked before any thread exists, it runs only ``discover``), which sends
its listings back through a pipe; remote sources, whose listing waits on the network, are listed by a thread. The
run takes each listing as the first attempt of its own, and lists itself whatever the helper could not give it.
This module imports nothing heavy, so starting costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.config import DEMO_ROOT, Config, is_url
from pipeline.extract.formats import DEFAULT_FORMAT, suffix_of

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from pipeline.extract.discover import SourceFile

log = logging.getLogger(__name__)

Listing = tuple["AbstractFileSystem", list["SourceFile"]]
# discover's logger: what it says of the files it does not read is said by the run, not by the helper.
_DISCOVER = "pipeline.extract.discover"


class Listings:
    """Listings of source URLs, begun at once in the background."""

    def __init__(self, urls: list[str], storage_options: dict[str, Any]):
        # Listed before the run knows its sources' formats (that needs the parser's imports): listed as the
        # default format's files, and used only by a source of that format.
        self.suffix = suffix_of(DEFAULT_FORMAT)
        self._pending: dict[str, Future[Listing | None]] = {u: Future() for u in urls}
        self._helper: _Helper | None = None
        local = [u for u in urls if not is_url(u)]
        threaded = [u for u in urls if is_url(u)]
        if local and sys.platform == "linux" and threading.active_count() == 1:
            self._helper = _fork_lister({u: self._pending[u] for u in local})
        if self._helper is None:
            threaded = urls
        if threaded:
            jobs = [(u, self._pending[u]) for u in threaded]
            threading.Thread(target=_list, args=(jobs, storage_options), name="list-ahead", daemon=True).start()

    def first_attempt(self, url: str, suffix: str) -> Callable[[], Listing | None] | None:
        """The listing of ``url`` made ahead, as the first attempt of the run's own listing: it returns the
        listing, or raises the error listing met, which the run's retries then treat like any first failure
        (a transient fault is retried and logged as before). It returns None where the helper itself failed
        (killed, out of processes): the run then lists at once. None if ``url`` was not listed ahead."""
        future = self._pending.pop(url, None)
        return None if future is None or suffix != self.suffix else future.result

    def close(self) -> None:
        """Stop a helper still listing (the run ended before it needed the listing)."""
        if self._helper is not None:
            self._helper.stop()


def _list(jobs: list[tuple[str, Future[Listing | None]]], storage_options: dict[str, Any]) -> None:
    try:
        from pipeline.extract.discover import discover

        for url, future in jobs:
            try:
                future.set_result(discover(url, storage_options))
            except Exception as exc:  # the run's own first attempt raises it: retried, or reported, as ever
                future.set_exception(exc)
    except Exception as exc:
        log.debug("could not list ahead (%s): the run lists itself", exc)
    finally:  # whatever stopped this thread, the run never waits on a listing nobody makes
        for _, future in jobs:
            if not future.done():
                future.set_result(None)


class _Helper:
    """The forked lister: its pid until it has been reaped (after which the pid may be another process's)."""

    def __init__(self, pid: int):
        self.pid = pid
        self._lock = threading.Lock()
        self._reaped = False

    def stop(self) -> None:
        """Ask the helper to end now (the run no longer needs what it lists); it may still be listing."""
        with self._lock:
            if not self._reaped:  # alive, or a zombie still ours: the signal cannot reach anyone else
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGTERM)

    def reap(self) -> None:
        """Wait for the helper to end, then collect it. The wait leaves it a zombie (WNOWAIT) and holds no
        lock, so ``stop`` can still signal it meanwhile; only the collection, after which its pid may be
        reused, is done under the lock."""
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self._reaped = True


def _fork_lister(pending: dict[str, Future[Listing | None]]) -> _Helper | None:
    """List local URLs in a forked child; a thread here turns what it sends into their futures' results. None
    if no child could be started (the caller lists in a thread instead)."""
    urls = list(pending)
    try:
        read, write = os.pipe()
    except OSError:  # out of file descriptors
        return None
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory
        os.close(read)
        os.close(write)
        return None
    if pid == 0:
        _child(urls, read, write)  # never returns
    os.close(write)
    helper = _Helper(pid)

    def receive() -> None:
        try:
            # Closed before the child is waited for: a child still writing then stops on the broken pipe.
            with os.fdopen(read, "rb") as inbox:
                from fsspec.implementations.local import LocalFileSystem

                from pipeline.extract.discover import SourceFile

                for _ in urls:
                    url, got, said = pickle.load(inbox)
                    for level, message in said:  # the files discover does not read, said once, by the run
                        logging.getLogger(_DISCOVER).log(level, "%s", message)
                    if isinstance(got, BaseException):
                        pending[url].set_exception(got)
                    else:
                        pending[url].set_result((LocalFileSystem(), list(map(SourceFile._make, got))))
        except Exception as exc:  # the child died or was stopped: the run lists what is left itself
            log.debug("the listing helper stopped (%s): the run lists what it did not send", exc)
        finally:
            for future in pending.values():
                if not future.done():
                    future.set_result(None)
            helper.reap()

    try:
        threading.Thread(target=receive, name="list-ahead", daemon=True).start()
    except RuntimeError:  # no thread to read it: the child is stopped and the run lists itself
        helper.stop()
        os.close(read)
        helper.reap()
        return None
    return helper


def _child(urls: list[str], read: int, write: int) -> None:
    """The forked helper: list, send, and leave without running anything of the parent's."""
    code = 0
    try:
        os.close(read)
        # Only the pipe and the standard streams: a copy of the run lock's descriptor here would keep the lock held
        # after the run itself died, until this process ended.
        os.closerange(3, write)
        os.closerange(write + 1, os.sysconf("SC_OPEN_MAX"))
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C stops it with the run
        said: list[tuple[int, str]] = []
        heard = logging.getLogger(_DISCOVER)
        heard.handlers = [_Collect(said)]
        heard.propagate = False
        with os.fdopen(write, "wb") as out:
            from pipeline.extract.discover import discover

            for url in urls:
                try:
                    _, files = discover(url)
                    # Not dataclasses.astuple, which deep-copies each field (see docs/decisions.md).
                    got: Any = [(f.path, f.url, f.size, f.version) for f in files]
                except Exception as exc:
                    got = exc
                pickle.dump((url, got, said[:]), out, protocol=pickle.HIGHEST_PROTOCOL)
                out.flush()
                said.clear()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class _Collect(logging.Handler):
    def __init__(self, into: list[tuple[int, str]]):
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append((record.levelno, record.getMessage()))


def list_ahead(cfg: Config) -> Listings | None:
    """Start listing the run's sources, logs first (their parsing starts first). Not where the run may first
    generate the demo dataset into empty demo folders: a listing made before that would miss it. None where
    nothing could be started: the run lists as it always could."""
    logs, songs = cfg.source.log_data, cfg.source.song_data
    if cfg.demo.generate_if_empty and DEMO_ROOT in (Path(logs).parent, Path(songs).parent):
        return None
    try:
        return Listings([logs, songs], cfg.storage_options())
    except Exception as exc:
        log.debug("could not list ahead (%s): the run lists itself", exc)
        return None
