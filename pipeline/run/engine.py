"""Engines: where a run's batches are parsed, transformed and staged.

Both engines run the same function on each batch (``process_batch``: ``transform.batch.log_batch`` then staging),
and hand back the same ``BatchOutcome``; they differ only in where that happens. ``local`` runs it in this
process, parsing the next batch in a background thread while the current one is transformed (and the previous
one's Parquet parts are written by the stager's own thread, ``stage.Stager``); ``ray`` (``distributed.py``) runs
it in Ray tasks across a cluster.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd

from pipeline.core.config import Config
from pipeline.core.schema import EVENT_RECORDS, SONGPLAYS, TIME
from pipeline.extract.discover import SourceFile
from pipeline.extract.fetch import read_batches
from pipeline.extract.reader import extract, extract_segments
from pipeline.extract.records import Extracted, Reject
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from pipeline.load.stage import Stager
from pipeline.ops.progress import Progress
from pipeline.ops.retry import with_retries
from pipeline.run.redelivery import Held, ShrinkGuard
from pipeline.transform import batch

R = TypeVar("R")
Timer = Callable[[str], AbstractContextManager[Any]]


@dataclass
class BatchOutcome:
    """What one batch hands back to the run: counts, rejects, and the partials to combine."""

    records: int
    bytes_read: int
    rejects: list[Reject]
    users: pd.DataFrame
    level_points: pd.DataFrame
    parts: list[tuple[str, str, int]] = field(default_factory=list)  # (relation, path, rows) staged
    # Files that could not be read at all: not loaded, so not recorded as loaded (the next run tries again).
    unread: list[str] = field(default_factory=list)
    # Files gone since the listing, and re-deliveries held back by the shrink guard: neither is loaded.
    vanished: list[str] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    node: str = ""
    # Text fields of events whose double encoding was repaired (``repair.py``).
    repaired: int = 0


def _no_timer(stage: str) -> AbstractContextManager[Any]:
    return nullcontext()


def process_batch(
    x: Extracted,
    lookup: pd.DataFrame,
    stager: Stager,
    part: str,
    timed: Timer = _no_timer,
    guard: ShrinkGuard | None = None,
) -> BatchOutcome:
    """One parsed batch of log records: its star rows staged as part ``part``, its partials returned."""
    held: list[Held] = []
    if guard is not None:
        x, held = guard.hold(x)
    with timed("transform"):
        b = batch.log_batch(x.frame, lookup, [f.url for f in x.files])
    frames = {EVENT_RECORDS.name: b.records, SONGPLAYS.name: b.songplays, TIME.name: b.time}
    out = BatchOutcome(
        x.records,
        x.bytes_read,
        x.rejects,
        b.users,
        b.level_points,
        unread=[x.files[i].url for i in sorted(x.unread)],
        vanished=[x.files[i].url for i in sorted(x.vanished)],
        held=held,
        repaired=b.repaired,
    )
    with timed("stage"):
        # The previous batch's files first: at most one batch's tables wait to be written.
        stager.flush()
        for name, frame in frames.items():
            if not frame.empty:
                out.parts.append((name, stager.write(name, frame, part), len(frame)))
    return out


class Engine(ABC):
    name: str

    # Processes (or Ray tasks) running batches side by side.
    workers = 1

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.nodes: set[str] = set()
        self.tasks: dict[str, int] = {}
        # Wall seconds of each task that ran a group of batches apart from this process: the longest is the span.
        self.task_seconds: list[float] = []
        # CPU seconds those tasks used (this process's own are counted by the run).
        self.task_cpu = 0.0

    def read_batch_bytes(self, files: list[SourceFile]) -> int:
        """How much of the logs one batch reads, for the run's ``files`` (a larger file is streamed in pieces,
        and a piece cannot be weighed by the shrink guard)."""
        return self.cfg.source.batch_bytes

    def close(self) -> None:  # noqa: B027 (most engines start nothing to stop)
        """Stop whatever the engine started (worker processes): called when the run ends, however it ends."""

    def retry(self, step: str, fn: Callable[[], R]) -> R:
        return with_retries(step, fn, attempts=self.cfg.run.attempts, base_delay=self.cfg.run.retry_base_seconds)

    @abstractmethod
    def read_songs(self, fs: Any, files: list[SourceFile]) -> Extracted:
        """Every song file of the run, parsed (``_file`` indexes ``files``)."""

    @abstractmethod
    def process_logs(
        self,
        fs: Any,
        files: list[SourceFile],
        lookup: Future[pd.DataFrame],
        stager: Stager,
        timed: Timer,
        guard: ShrinkGuard | None = None,
    ) -> Outcomes:
        """The run's log files in batches, each through ``process_batch`` (with ``guard``); outcomes in any order.

        Called before the song files are read: an engine may start reading the logs at once, and waits for
        ``lookup`` (set once the catalogue is built) only where a batch is matched against it.
        """


class Outcomes(Iterator[BatchOutcome]):
    """A run's batch outcomes. ``close`` stops what the engine started ahead, even before the first outcome is
    asked for (a run that fails reading the song files must not leave a thread parsing logs)."""

    def __init__(self, items: Generator[BatchOutcome, None, None], started: Prefetch[Any] | None = None):
        self._items = items
        self._started = started

    def __next__(self) -> BatchOutcome:
        return next(self._items)

    def close(self) -> None:
        if self._started is not None:
            self._started.close()
        self._items.close()  # suspended mid-batch: its progress bar ends now, not at collection


class LocalEngine(Engine):
    """One process: a background thread fetches and parses the next batch while this one is transformed, and
    the stager's thread writes the previous batch's parts."""

    name = "local"

    def read_songs(self, fs: Any, files: list[SourceFile]) -> Extracted:
        return self.retry(
            "reading song_data", lambda: extract(SONG_SOURCE, fs, files, concurrency=self.cfg.source.concurrency)
        )

    def process_logs(
        self,
        fs: Any,
        files: list[SourceFile],
        lookup: Future[pd.DataFrame],
        stager: Stager,
        timed: Timer,
        guard: ShrinkGuard | None = None,
    ) -> Outcomes:
        # pyarrow's parser releases the GIL, so parsing the next batch overlaps with the pandas transforms of
        # this one (mostly single-threaded). Parsing starts now, while the caller reads the song files, so the
        # first batch is not waited for after them. "extract" counts only the time this thread waits.
        parsed = prefetch(self.parsed_logs(fs, files))
        return Outcomes(self._process(parsed, sum(f.size for f in files), lookup, stager, timed, guard), parsed)

    def parsed_logs(self, fs: Any, files: list[SourceFile]) -> Iterator[Extracted]:
        """The log files read and parsed batch by batch, nothing more: what the background thread of a run
        does, and all that ``make bench`` times as the least any run that parses this way can take."""
        for segments in read_batches(
            fs, files, self.cfg.source.batch_bytes, self.cfg.source.concurrency, retry=self.retry
        ):
            yield extract_segments(LOG_SOURCE, files, segments)

    def _process(
        self,
        parsed: Prefetch[Extracted],
        size: int,
        lookup: Future[pd.DataFrame],
        stager: Stager,
        timed: Timer,
        guard: ShrinkGuard | None,
    ) -> Generator[BatchOutcome, None, None]:
        with closing(parsed), Progress("log data", total=size, unit="B") as bar:
            n = 0
            while True:
                with timed("extract"):
                    x = next(parsed, None)
                if x is None:
                    return
                bar.update(x.bytes_read)
                yield process_batch(x, lookup.result(), stager, f"{n:05d}", timed, guard)
                n += 1


class Prefetch(Iterator[R]):
    """The next items, produced in a background thread (started at once) while the caller works.

    If the caller stops early (an error, ``close`` even before the first item, or dropping the iterator), the
    thread stops after the item it is working on, so no batch stays pinned in memory by a thread blocked on a
    full queue. ``close`` does not wait for that item: a failing run reports at once.
    """

    def __init__(self, items: Iterator[R], depth: int = 1):
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        # The thread holds the queue and the event, not this object, so dropping it reaches __del__.
        threading.Thread(target=_produce, args=(items, self._queue, self._stop), name="prefetch", daemon=True).start()

    def __next__(self) -> R:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "item":
            return value
        self.close()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        self._done = True
        self._stop.set()

    __del__ = close


def _produce(items: Iterator[Any], q: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in items:
            if not put(("item", item)):
                return
        put(("done", None))
    except BaseException as exc:
        put(("error", exc))


def prefetch(items: Iterator[R], depth: int = 1) -> Prefetch[R]:
    """``items`` produced ahead in a background thread; see ``Prefetch``."""
    return Prefetch(items, depth)
