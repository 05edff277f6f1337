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
from collections.abc import Generator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.config import Config
from pipeline.extract.discover import SourceFile
from pipeline.extract.reader import extract_segments
from pipeline.extract.records import Extracted
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from pipeline.load.stage import Stager
from pipeline.run.engine import BatchOutcome, Engine, Outcomes, Timer
from pipeline.run.redelivery import ShrinkGuard
from pipeline.run.tasks import merge_song_groups, plan, process_group, read_song_group, runs_of

log = logging.getLogger(__name__)

# The whole ``pipeline`` package, shipped to the cluster's workers.
PACKAGE = Path(__file__).resolve().parents[1]


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
            runtime_env={"py_modules": [str(PACKAGE)]},
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        from pipeline.ops.signals import rearm

        rearm()  # ray.init makes SIGTERM a plain sys.exit: a run must still roll back, record and say so
    log.info("Ray engine: %d nodes, %s CPUs", len(ray.nodes()), ray.cluster_resources().get("CPU"))


def _read_songs(cfg: Config, files: list[SourceFile]) -> tuple[Extracted, str]:
    """One Ray task: ``tasks.read_song_group``, and the node it ran on."""
    import ray

    return read_song_group(cfg, files), ray.get_runtime_context().get_node_id()


def _process(
    cfg: Config, run_id: str, task: int, files: list[SourceFile], lookup: pd.DataFrame, guard: ShrinkGuard | None
) -> list[BatchOutcome]:
    """One Ray task: ``tasks.process_group`` (the same retries as the local engine: Ray's own only re-run a task
    whose worker died)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    return process_group(cfg, run_id, task, files, lambda: lookup, guard, cfg.source.batch_bytes, node).outcomes


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
        groups = runs_of(files, cpus, self.cfg.source.batch_bytes)
        remote = ray.remote(_read_songs).options(scheduling_strategy="SPREAD", max_retries=2)
        futures = [remote.remote(self.cfg, [files[i] for i in group]) for group in groups]
        log.info("Ray engine: %d song file groups submitted as tasks", len(futures))
        results: list[tuple[Extracted, str]] = ray.get(futures)
        self.nodes |= {node for _, node in results}
        self.tasks[SONG_SOURCE.name] = len(results)
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
