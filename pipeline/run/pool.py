"""``engine: local`` on more cores: the run's batches side by side in worker processes.

The workers run exactly what a Ray task runs (``tasks.process_group``, ``tasks.read_song_group``): each reads,
parses, transforms and stages its own group of files and hands back only its outcomes (counts, rejects, the
partial users rows and level points), which this process combines as it always does. The tables are the same
whatever the number of workers: every batch is a pure function of its records, and the combination is decided
by the data, never by the order outcomes arrive in.

Tasks are handed out as soon as the log files are listed: workers parse while this process reads the song
files, and wait for the song lookup (a file this process writes once) only to match their first batch. The
workers share ``source.batch_mb``: each reads batches of ``batch_mb / workers``. They come from a fork server
(none of this process's threads or connections are copied into them), log through this process's handlers,
ignore Ctrl-C (the run handles it), end if this process dies, and are stopped before a run returns.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.config import Config
from pipeline.extract.discover import SourceFile
from pipeline.extract.records import Extracted
from pipeline.load.stage import Stager
from pipeline.ops.progress import Progress
from pipeline.run.engine import BatchOutcome, LocalEngine, Outcomes, Timer
from pipeline.run.redelivery import ShrinkGuard
from pipeline.run.tasks import GroupResult, merge_song_groups, plan, process_group, read_song_group, runs_of

log = logging.getLogger(__name__)

# Below this many song files one process reads them faster than workers can be handed them.
SONG_FILES_PER_WORKER = 2_000
# With ``run.workers: 0``, a night with less log data than this runs in this process: starting workers would
# cost more than they save.
MIN_PARALLEL_BYTES = 32 << 20
# With ``run.workers: 0``, no more workers than leave each batches of this size.
MIN_BATCH_BYTES = 8 << 20
# With ``run.workers: 0``, fewer cores than this run in one process: its parsing thread, its transforms and its
# writer thread already keep two cores busy, and workers only add their start-up (docs/decisions.md).
MIN_CORES = 4
# Environment a task carries to its worker: credentials that rotate, and the fault-injection switches.
TASK_ENV = ("AWS_", "SPARKIFY_")


def cores() -> int:
    """The cores this process may use: its CPU affinity (``taskset``), and a cgroup CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def workers_for(cfg: Config) -> int:
    """Worker processes for a run: ``run.workers``, or with 0 every core (from four up), as many as the batch
    budget can feed."""
    if cfg.run.workers:
        return cfg.run.workers
    n = cores()
    if n < MIN_CORES or not _main_importable():
        return 1
    return max(1, min(n, cfg.source.batch_bytes // MIN_BATCH_BYTES))


def _main_importable() -> bool:
    """Workers import the main module again: one typed at a prompt or piped in cannot be."""
    main = sys.modules.get("__main__")
    return getattr(main, "__spec__", None) is not None or bool(getattr(main, "__file__", None))


# ---- in the worker


_lookups: dict[str, pd.DataFrame] = {}


def _worker_init(logs: Any, level: int, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the run handles it
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(logs)]
    logging.getLogger("pipeline").setLevel(level)
    import pyarrow as pa

    pa.set_cpu_count(threads)  # the cores are shared out between the workers
    parent = multiprocessing.parent_process()
    if parent is not None:  # a run killed outright (SIGKILL, the OOM killer) takes its workers with it

        def orphaned() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(1)

        threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()


def _warm() -> int:
    return os.getpid()


def _lookup(path: str) -> pd.DataFrame:
    """The run's song lookup, once this process has written it (parsing does not wait for it, matching does)."""
    if path not in _lookups:
        while not os.path.exists(path):
            time.sleep(0.02)
        _lookups.clear()
        _lookups[path] = pd.read_parquet(path)
    return _lookups[path]


def _with_env(env: dict[str, str], fn: Callable[..., Any], *args: Any) -> Any:
    for key in [k for k in os.environ if k.startswith(TASK_ENV) and k not in env]:
        del os.environ[key]
    os.environ.update(env)
    return fn(*args)


def _song_group(cfg: Config, files: list[SourceFile]) -> tuple[Extracted, float]:
    start = time.process_time()
    x = read_song_group(cfg, files)
    return x, time.process_time() - start


def _log_group(
    cfg: Config, run_id: str, task: int, files: list[SourceFile], lookup: str, guard: ShrinkGuard | None, size: int
) -> GroupResult:
    return process_group(cfg, run_id, task, files, lambda: _lookup(lookup), guard, size)


# ---- in the run's process


class PooledEngine(LocalEngine):
    """The local engine with its batches in ``wanted`` processes, started when a night is worth it."""

    def __init__(self, cfg: Config, workers: int):
        super().__init__(cfg)
        self.wanted = workers
        self.batch_bytes = max(1, cfg.source.batch_bytes // workers)
        self._pool: ProcessPoolExecutor | None = None
        self._parallel: bool | None = None
        self._lock = threading.Lock()
        self._listener: logging.handlers.QueueListener | None = None
        self._lookup_dir = ""
        self._logs_handed_out = False

    def read_batch_bytes(self, files: list[SourceFile]) -> int:
        """How much of the logs a batch reads (a larger file is streamed in pieces): decided once per run."""
        if self._parallel is None:
            self._parallel = bool(self.cfg.run.workers) or sum(f.weight for f in files) >= MIN_PARALLEL_BYTES
        return self.batch_bytes if self._parallel else self.cfg.source.batch_bytes

    def _start(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["pipeline.run.tasks"])
                queue = ctx.Queue()
                self._listener = logging.handlers.QueueListener(
                    queue, *logging.getLogger().handlers, respect_handler_level=True
                )
                self._listener.start()
                level = logging.getLogger("pipeline").getEffectiveLevel()
                share = max(1, cores() // self.wanted)
                self._pool = ProcessPoolExecutor(
                    self.wanted, mp_context=ctx, initializer=_worker_init, initargs=(queue, level, share)
                )
                self.workers = self.wanted
                for _ in range(self.wanted):  # forked now, not on the first batch
                    self._pool.submit(_warm)
            return self._pool

    def close(self) -> None:
        """Stop the workers, even mid-task (a failed or interrupted run must not leave them writing)."""
        if self._pool is not None:
            # Taken before the shutdown, which forgets them.
            processes = list((self._pool._processes or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join(5)
        if self._listener is not None:
            self._listener.stop()
        if self._lookup_dir:
            shutil.rmtree(self._lookup_dir, ignore_errors=True)

    def read_songs(self, fs: Any, files: list[SourceFile]) -> Extracted:
        # Log tasks handed out already hold every worker until the lookup these songs make: this process reads
        # them then, while the workers parse.
        if len(files) < 2 * SONG_FILES_PER_WORKER or not self._parallel or self._logs_handed_out:
            return super().read_songs(fs, files)
        parts = min(self.wanted, len(files) // SONG_FILES_PER_WORKER)
        groups = runs_of(files, parts, self.batch_bytes)
        pool = self._start()
        futures = [pool.submit(_with_env, _env(), _song_group, self.cfg, [files[i] for i in g]) for g in groups]
        results: list[tuple[Extracted, float]] = [f.result() for f in futures]
        self.task_cpu += sum(cpu for _, cpu in results)
        return merge_song_groups(files, groups, [x for x, _ in results])

    def process_logs(
        self,
        fs: Any,
        files: list[SourceFile],
        lookup: Future[pd.DataFrame],
        stager: Stager,
        timed: Timer,
        guard: ShrinkGuard | None = None,
    ) -> Outcomes:
        self.read_batch_bytes(files)
        if not self._parallel:
            return super().process_logs(fs, files, lookup, stager, timed, guard)
        self._lookup_dir = tempfile.mkdtemp(prefix="sparkify-lookup-")  # the workers' local copy of the lookup
        path = os.path.join(self._lookup_dir, f"{stager.run_id}.parquet")
        groups = plan(files, self.batch_bytes)
        self._logs_handed_out = bool(groups)
        futures: dict[Future[GroupResult], list[SourceFile]] = {}
        # Handed out now, from a thread (the fork server takes a moment to start): the workers parse while this
        # process reads the song files.
        submitted = threading.Thread(
            target=self._submit, args=(groups, files, path, stager.run_id, guard, futures), daemon=True
        )
        submitted.start()
        return Outcomes(self._outcomes(submitted, futures, lookup, path, sum(f.size for f in files), timed))

    def _submit(
        self,
        groups: list[list[int]],
        files: list[SourceFile],
        path: str,
        run_id: str,
        guard: ShrinkGuard | None,
        futures: dict[Future[GroupResult], list[SourceFile]],
    ) -> None:
        pool = self._start()
        env = _env()
        for n, group in enumerate(groups):
            mine = [files[i] for i in group]
            args = (self.cfg, run_id, n, mine, path, guard, self.batch_bytes)
            futures[pool.submit(_with_env, env, _log_group, *args)] = mine
        log.info("%d log file groups handed to %d worker processes", len(groups), self.wanted)

    def _outcomes(
        self,
        submitted: threading.Thread,
        futures: dict[Future[GroupResult], list[SourceFile]],
        lookup: Future[pd.DataFrame],
        path: str,
        size: int,
        timed: Timer,
    ) -> Generator[BatchOutcome, None, None]:
        # First asked for once the song side has set the lookup: written where the workers wait for it.
        _publish(lookup.result(), path)
        with Progress("log data", total=size, unit="B") as bar:
            with timed("extract"):
                submitted.join()
            if self._pool is None:
                raise RuntimeError("the worker processes could not be started; see the error above")
            pending = as_completed(futures)
            while True:
                with timed("extract"):  # waiting for the workers, which read, transform and stage
                    done = next(pending, None)
                if done is None:
                    return
                try:
                    result = done.result()
                except BrokenProcessPool as exc:
                    names = ", ".join(f.url for f in futures[done][:3])
                    raise RuntimeError(
                        f"a worker process died (out of memory?) while reading {names}: nothing was loaded. "
                        "Lower source.batch_mb or run.workers and run again."
                    ) from exc
                self.task_seconds.append(result.seconds)
                self.task_cpu += result.cpu
                bar.update(sum(f.size for f in futures[done]))
                yield from result.outcomes


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(TASK_ENV)}


def _publish(lookup: pd.DataFrame, path: str) -> None:
    """Write the lookup where the workers wait for it, whole or not at all."""
    partial = path + ".partial"
    lookup.to_parquet(partial, index=False)
    os.replace(partial, path)
