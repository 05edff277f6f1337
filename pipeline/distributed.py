"""``engine: ray``: log batches as Ray tasks across a cluster, with the same pandas transforms.

The Ray and Modin versions are those of awswrangler's distributed mode (the ``distributed`` extra), so
one environment serves both; within each task awswrangler runs in-process on pandas frames.

Song files are read by tasks too, one group per cluster CPU: tens of thousands of small objects are a
driver's slowest read, and their parsed rows are small, so they come back to the driver, which builds the
song and artist dimensions and the lookup from them. Each log task reads its own group of log files (by URL,
from S3 on a real cluster), parses them, runs the transforms and writes its Parquet parts to the staging
location; the driver only receives counts and rejected records. The two transforms that need global state
are handled so that tasks stay independent:

- song matching: the song lookup (this run's songs plus the warehouse's catalogue) is built once on the
  driver and broadcast to every task through Ray's object store;
- latest level per user, and events seen in two files: each task emits its own partial rows, and the load
  reduces them to one row per key (the newest by ``last_seen_at``) inside the load transaction.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Config
from .discover import SourceFile, open_fs
from .extract import FILE_COL, Extracted, Reject, extract, extract_segments, read_batches
from .sources import LOG_SOURCE, SONG_SOURCE

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    parts: list[tuple[str, str, int]] = field(default_factory=list)  # (table, path, rows)
    records: int = 0
    bytes_read: int = 0
    rejects: list[Reject] = field(default_factory=list)
    node: str = ""


def init(cfg: Config) -> None:
    # Under `uv run`, Ray would build a fresh environment per worker from the project file, without the
    # extras this engine needs; workers use the driver's interpreter instead.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from . import aws

    aws.configure_wrangler(cfg)
    if not ray.is_initialized():
        # Ship this package to the workers, so a cluster whose image has only the dependencies runs it.
        ray.init(
            address=cfg.ray.address or None,
            runtime_env={"py_modules": [str(Path(__file__).resolve().parent)]},
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    log.info("Ray engine: %d nodes, %s CPUs", len(ray.nodes()), ray.cluster_resources().get("CPU"))


def plan(files: list[SourceFile], batch_bytes: int) -> list[list[int]]:
    """Groups of file indices of about ``batch_bytes`` each, one task per group."""
    groups: list[list[int]] = []
    size = 0
    for i, f in enumerate(files):
        if not groups or size + f.size > batch_bytes:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += f.size
    return groups


def _read_songs(cfg: Config, files: list[SourceFile]) -> tuple[Extracted, str]:
    """One Ray task: fetch and parse a group of song files."""
    import ray

    from .retry import with_retries

    fs, _ = open_fs(cfg.source.song_data, cfg.storage_options())
    x = with_retries(
        "reading song_data",
        lambda: extract(SONG_SOURCE, fs, files, concurrency=cfg.source.concurrency),
        attempts=cfg.run.attempts,
        base_delay=cfg.run.retry_base_seconds,
    )
    return x, ray.get_runtime_context().get_node_id()


def extract_songs(cfg: Config, files: list[SourceFile]) -> tuple[Extracted, set[str], int]:
    """The song files read by tasks across the cluster, as one extraction (``_file`` indexes ``files``).

    Also returns the nodes the tasks ran on and how many tasks there were.
    """
    import ray

    if not files:
        return extract_segments(SONG_SOURCE, [], []), set(), 0
    # One run of consecutive files per cluster CPU, split further where one would exceed a batch.
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    per = -(-len(files) // cpus)
    groups = [
        [start + i for i in part]
        for start in range(0, len(files), per)
        for part in plan(files[start : start + per], cfg.source.batch_mb << 20)
    ]
    remote = ray.remote(_read_songs).options(scheduling_strategy="SPREAD", max_retries=2)
    futures = [remote.remote(cfg, [files[i] for i in group]) for group in groups]
    log.info("Ray engine: %d song file groups submitted as tasks", len(futures))
    results: list[tuple[Extracted, str]] = ray.get(futures)
    frames = []
    for group, (x, _) in zip(groups, results, strict=True):
        frame = x.frame
        frame[FILE_COL] = frame[FILE_COL] + group[0]  # groups are runs of consecutive files
        frames.append(frame)
    out = Extracted(
        spec=SONG_SOURCE,
        files=files,
        frame=pd.concat(frames, ignore_index=True),
        rejects=[r for x, _ in results for r in x.rejects],
        bytes_read=sum(x.bytes_read for x, _ in results),
    )
    return out, {node for _, node in results}, len(results)


def _process(cfg: Config, run_id: str, task: int, files: list[SourceFile], lookup: pd.DataFrame) -> BatchResult:
    """One Ray task: read, parse, transform and stage a group of log files."""
    import ray

    from . import aws
    from . import transform as T
    from .stage import Stager

    aws.configure_wrangler(cfg)  # in the worker too: awswrangler in-process, on pandas frames
    fs, _ = open_fs(cfg.source.log_data, cfg.storage_options())
    session = aws.session(cfg) if cfg.staging.path.startswith("s3://") else None
    stager = Stager(cfg.staging.path, run_id, session)
    out = BatchResult(node=ray.get_runtime_context().get_node_id())
    for k, segments in enumerate(read_batches(fs, files, cfg.source.batch_mb << 20, cfg.source.concurrency)):
        x = extract_segments(LOG_SOURCE, files, segments)
        out.records += x.records
        out.bytes_read += x.bytes_read
        out.rejects += x.rejects
        plays = T.songplays(x.frame, lookup)
        frames = {"users": T.users(x.frame), "time": T.time(plays), "songplays": plays}
        for name, frame in frames.items():
            if not frame.empty:
                out.parts.append((name, stager.write(name, frame, f"t{task:05d}-{k:03d}"), len(frame)))
    return out


def process_logs(cfg: Config, run_id: str, files: list[SourceFile], lookup: pd.DataFrame) -> list[BatchResult]:
    import ray

    lookup_ref = ray.put(lookup)
    remote = ray.remote(_process).options(scheduling_strategy="SPREAD", max_retries=2)
    groups = plan(files, cfg.source.batch_mb << 20)
    futures: list[Any] = [
        remote.remote(cfg, run_id, n, [files[i] for i in group], lookup_ref) for n, group in enumerate(groups)
    ]
    log.info("Ray engine: %d log file groups submitted as tasks", len(futures))
    results: list[BatchResult] = ray.get(futures)
    return results
