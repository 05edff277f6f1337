"""``engine: ray``: song and log file groups as Ray tasks across a cluster, running the same batch function.

The Ray and Modin versions are those of awswrangler's distributed mode (the ``distributed`` extra), so
one environment serves both; within each task awswrangler runs in-process on pandas frames.

Song files are read by tasks, one group per cluster CPU: tens of thousands of small objects are a driver's
slowest read, and their parsed rows are small, so they come back to the driver, which builds the catalogue.
Each log task reads its own group of log files (by URL, from S3 on a real cluster) and runs
``engine.process_batch`` on each batch, exactly as the local engine does: it stages the batch's records,
plays and times to the staging location and returns its partial users rows and level-history points, which
the driver combines like the local engine's. The song lookup is built once on the driver and broadcast to
every task through Ray's object store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from concurrent.futures import Future
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.config import Config
from pipeline.extract.discover import SourceFile, open_fs
from pipeline.extract.fetch import read_batches
from pipeline.extract.reader import extract, extract_segments
from pipeline.extract.records import FILE_COL, Extracted
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from pipeline.load.stage import Stager
from pipeline.ops.retry import with_retries
from pipeline.run.engine import BatchOutcome, Engine, Outcomes, Timer, process_batch
from pipeline.run.redelivery import ShrinkGuard

log = logging.getLogger(__name__)


def init(cfg: Config) -> None:
    # Under `uv run`, Ray would build a fresh environment per worker from the project file, without the
    # extras this engine needs; workers use the driver's interpreter instead.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from pipeline.ops import aws

    aws.configure_wrangler(cfg)
    if not ray.is_initialized():
        # Ship this package to the workers, so a cluster whose image has only the dependencies runs it.
        ray.init(
            address=cfg.ray.address or None,
            runtime_env={"py_modules": [str(Path(__file__).resolve().parent)]},
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        from pipeline.ops.signals import rearm

        rearm()  # ray.init makes SIGTERM a plain sys.exit: a run must still roll back, record and say so
    log.info("Ray engine: %d nodes, %s CPUs", len(ray.nodes()), ray.cluster_resources().get("CPU"))


def plan(files: list[SourceFile], batch_bytes: int) -> list[list[int]]:
    """Groups of file indices of about ``batch_bytes`` each, one task per group."""
    groups: list[list[int]] = []
    size = 0
    for i, f in enumerate(files):
        if not groups or size + f.weight > batch_bytes:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += f.weight
    return groups


def _retrying(cfg: Config, step: str, fn: Callable[[], Any]) -> Any:
    return with_retries(step, fn, attempts=cfg.run.attempts, base_delay=cfg.run.retry_base_seconds)


def _read_songs(cfg: Config, files: list[SourceFile]) -> tuple[Extracted, str]:
    """One Ray task: fetch and parse a group of song files."""
    import ray

    fs, _ = open_fs(cfg.source.song_data, cfg.storage_options())
    x = _retrying(cfg, "reading song_data", lambda: extract(SONG_SOURCE, fs, files, concurrency=cfg.source.concurrency))
    return x, ray.get_runtime_context().get_node_id()


def _process(
    cfg: Config, run_id: str, task: int, files: list[SourceFile], lookup: pd.DataFrame, guard: ShrinkGuard | None
) -> list[BatchOutcome]:
    """One Ray task: read, parse, transform and stage a group of log files, batch by batch."""
    import ray

    from pipeline.ops import aws

    aws.configure_wrangler(cfg)  # in the worker too: awswrangler in-process, on pandas frames
    fs, _ = open_fs(cfg.source.log_data, cfg.storage_options())
    session = aws.session(cfg) if cfg.staging.path.startswith("s3://") else None

    def retry(step: str, fn: Callable[[], Any]) -> Any:
        return _retrying(cfg, step, fn)

    # The same retries as the local engine: Ray's own only re-runs a task whose worker died.
    stager = Stager(cfg.staging.path, run_id, session, retry=retry)
    node = ray.get_runtime_context().get_node_id()
    out = []
    with closing(stager):
        for k, segments in enumerate(read_batches(fs, files, cfg.source.batch_bytes, cfg.source.concurrency, retry)):
            x = extract_segments(LOG_SOURCE, files, segments)
            outcome = process_batch(x, lookup, stager, f"t{task:05d}-{k:03d}", guard=guard)
            outcome.node = node
            out.append(outcome)
        stager.flush()  # the task's files are written before it reports them
    return out


class RayEngine(Engine):
    name = "ray"

    def __init__(self, cfg: Config, run_id: str = ""):
        super().__init__(cfg)
        init(cfg)

    def read_songs(self, fs: Any, files: list[SourceFile]) -> Extracted:
        """The song files read by tasks across the cluster, as one extraction (``_file`` indexes ``files``)."""
        import ray

        if not files:
            return extract_segments(SONG_SOURCE, [], [])
        # One run of consecutive files per cluster CPU, split further where one would exceed a batch.
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        per = -(-len(files) // cpus)
        groups = [
            [start + i for i in part]
            for start in range(0, len(files), per)
            for part in plan(files[start : start + per], self.cfg.source.batch_bytes)
        ]
        remote = ray.remote(_read_songs).options(scheduling_strategy="SPREAD", max_retries=2)
        futures = [remote.remote(self.cfg, [files[i] for i in group]) for group in groups]
        log.info("Ray engine: %d song file groups submitted as tasks", len(futures))
        results: list[tuple[Extracted, str]] = ray.get(futures)
        frames = []
        for group, (x, _) in zip(groups, results, strict=True):
            frame = x.frame
            frame[FILE_COL] = frame[FILE_COL] + group[0]  # groups are runs of consecutive files
            frames.append(frame)
        self.nodes |= {node for _, node in results}
        self.tasks[SONG_SOURCE.name] = len(results)
        return Extracted(
            spec=SONG_SOURCE,
            files=files,
            frame=pd.concat(frames, ignore_index=True),
            rejects=[r for x, _ in results for r in x.rejects],
            bytes_read=sum(x.bytes_read for x, _ in results),
            # Files no task could read stay out of the ledger, as on the local engine.
            unread={group[0] + i for group, (x, _) in zip(groups, results, strict=True) for i in x.unread},
            vanished={group[0] + i for group, (x, _) in zip(groups, results, strict=True) for i in x.vanished},
            whole={group[0] + i for group, (x, _) in zip(groups, results, strict=True) for i in x.whole},
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
        # The tasks carry the lookup, so they are submitted once it is known (when the first outcome is asked for).
        return Outcomes(self._process(files, lookup, stager, timed, guard))

    def _process(
        self,
        files: list[SourceFile],
        lookup: Future[pd.DataFrame],
        stager: Stager,
        timed: Timer,
        guard: ShrinkGuard | None,
    ) -> Generator[BatchOutcome, None, None]:
        import ray

        lookup_ref = ray.put(lookup.result())
        remote = ray.remote(_process).options(scheduling_strategy="SPREAD", max_retries=2)
        groups = plan(files, self.cfg.source.batch_bytes)
        futures = [
            remote.remote(self.cfg, stager.run_id, n, [files[i] for i in group], lookup_ref, guard)
            for n, group in enumerate(groups)
        ]
        log.info("Ray engine: %d log file groups submitted as tasks", len(futures))
        self.tasks[LOG_SOURCE.name] = len(futures)
        with timed("extract"):  # extraction, transforms and staging all run in the Ray tasks
            results: list[list[BatchOutcome]] = ray.get(futures)
        for outcomes in results:
            for outcome in outcomes:
                self.nodes.add(outcome.node)
                yield outcome
