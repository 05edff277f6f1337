"""``engine: ray``: log batches as Ray tasks across a cluster, with the same pandas transforms.

The Ray and Modin versions are those of awswrangler's distributed mode (the ``distributed`` extra), so
one environment serves both; within each task awswrangler runs in-process on pandas frames.

Each task reads its own group of log files (by URL, from S3 on a real cluster), parses them, runs the
transforms and writes its Parquet parts to the staging location; the driver only receives counts and
rejected records. The two transforms that need global state are handled so that tasks stay independent:

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
from .extract import Reject, extract_segments, read_batches
from .sources import LOG_SOURCE

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
