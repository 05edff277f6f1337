"""``engine: local`` on more than one core: the run's batches side by side in worker processes.

The workers run exactly what a Ray task runs (``tasks.process_group``, ``tasks.read_song_group``): each reads,
parses, transforms and stages its own group of files and hands back only its outcomes (counts, rejects, the
partial users rows and level points), which this process combines as it always does. The tables are the same
whatever the number of workers: every batch is a pure function of its records, and the combination is decided
by the data, never by the order outcomes arrive in.

Memory stays within the configured budget whatever the core count: the workers share ``source.batch_mb``,
each reading batches of ``batch_mb / workers``. Workers come from a fork server started once per process (it
imports the batch code once; each worker is a fork of it, with none of this process's threads or connections).
They ignore Ctrl-C, which the run handles; a run that fails or is interrupted stops them before it returns.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
from collections.abc import Generator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
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
# With ``run.workers: 0``, no more workers than leave each batches of this size: per-batch costs would outweigh
# the parallelism.
MIN_BATCH_BYTES = 8 << 20


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which ``taskset`` and containers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def workers_for(cfg: Config) -> int:
    """Worker processes for a run: ``run.workers``, or with 0 every core, as many as the batch budget can feed."""
    if cfg.run.workers:
        return cfg.run.workers
    return max(1, min(cores(), cfg.source.batch_bytes // MIN_BATCH_BYTES))


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the run handles it


def _warm() -> int:
    return os.getpid()


class PooledEngine(LocalEngine):
    """The local engine with its batches in ``workers`` processes."""

    def __init__(self, cfg: Config, workers: int):
        super().__init__(cfg)
        self.wanted = workers
        self.batch_bytes = max(1, cfg.source.batch_bytes // workers)
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        """The workers, started on first need: for a night too small to gain from them, never."""
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["pipeline.run.tasks"])
            self._pool = ProcessPoolExecutor(self.wanted, mp_context=ctx, initializer=_quiet_worker)
            self.workers = self.wanted
            for _ in range(self.wanted):  # each imports nothing more, but is forked now rather than on a batch
                self._pool.submit(_warm)
        return self._pool

    def close(self) -> None:
        """Stop the workers, even mid-task (a failed or interrupted run must not leave them writing)."""
        if self._pool is None:
            return
        # Taken before the shutdown, which forgets them.
        processes = list((self._pool._processes or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(5)

    def _worth_it(self, size: int) -> bool:
        return bool(self.cfg.run.workers) or size >= MIN_PARALLEL_BYTES

    def read_songs(self, fs: Any, files: list[SourceFile]) -> Extracted:
        if len(files) < 2 * SONG_FILES_PER_WORKER or not (self._pool or self._worth_it(0)):
            return super().read_songs(fs, files)
        parts = min(self.wanted, len(files) // SONG_FILES_PER_WORKER)
        groups = runs_of(files, parts, self.cfg.source.batch_bytes)
        pool = self._start()
        futures = [pool.submit(read_song_group, self.cfg, [files[i] for i in g]) for g in groups]
        return merge_song_groups(files, groups, [f.result() for f in futures])

    def process_logs(
        self,
        fs: Any,
        files: list[SourceFile],
        lookup: Future[pd.DataFrame],
        stager: Stager,
        timed: Timer,
        guard: ShrinkGuard | None = None,
    ) -> Outcomes:
        if not self._worth_it(sum(f.weight for f in files)):
            return super().process_logs(fs, files, lookup, stager, timed, guard)
        self._start()  # the workers start while the song files are read
        # The tasks carry the lookup, so they are submitted once it is known (when the first outcome is asked for).
        return Outcomes(self._run_tasks(files, lookup, stager, timed, guard))

    def _run_tasks(
        self,
        files: list[SourceFile],
        lookup: Future[pd.DataFrame],
        stager: Stager,
        timed: Timer,
        guard: ShrinkGuard | None,
    ) -> Generator[BatchOutcome, None, None]:
        groups = plan(files, self.batch_bytes)
        size = {n: sum(files[i].size for i in g) for n, g in enumerate(groups)}
        pool = self._start()
        with Progress("log data", total=sum(size.values()), unit="B") as bar:
            table = lookup.result()
            futures = {
                pool.submit(
                    process_group,
                    self.cfg,
                    stager.run_id,
                    n,
                    [files[i] for i in group],
                    table,
                    guard,
                    self.batch_bytes,
                ): n
                for n, group in enumerate(groups)
            }
            log.info("%d log file groups in %d worker processes", len(futures), self.workers)
            pending = as_completed(futures)
            while True:
                with timed("extract"):  # waiting for the workers, which read, transform and stage
                    done = next(pending, None)
                if done is None:
                    return
                result: GroupResult = done.result()
                self.task_seconds.append(result.seconds)
                bar.update(size[futures[done]])
                yield from result.outcomes


def _forkserver_cpu() -> float:
    """CPU seconds of this process's fork server so far (Linux), which no wait will ever count."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime (fields 14-17), in clock ticks.
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """The run's work so far: CPU seconds of this process, of its workers that have ended, and of the fork
    server they came from."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime + _forkserver_cpu()
