"""The work of one task, wherever it runs: a group of log files read, transformed and staged batch by batch, or a
group of song files read. The pooled local engine runs these in worker processes and the Ray engine in Ray
tasks; both hand back what the driver combines. Plain functions of picklable arguments."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.core.config import Config
from pipeline.extract.discover import SourceFile, open_fs
from pipeline.extract.fetch import read_batches
from pipeline.extract.reader import extract, extract_segments
from pipeline.extract.records import FILE_COL, Extracted
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from pipeline.load.stage import Stager
from pipeline.ops import faults, memory
from pipeline.ops.retry import with_retries
from pipeline.run.engine import BatchOutcome, process_batch
from pipeline.run.redelivery import ShrinkGuard


def plan(files: Sequence[SourceFile], batch_bytes: int) -> list[list[int]]:
    """Groups of file indices of about ``batch_bytes`` each (a larger file alone), one task per group."""
    groups: list[list[int]] = []
    size = 0
    for i, f in enumerate(files):
        if not groups or size + f.weight > batch_bytes:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += f.weight
    return groups


def runs_of(files: Sequence[SourceFile], parts: int, batch_bytes: int) -> list[list[int]]:
    """About ``parts`` runs of consecutive files, each split further where it would exceed a batch."""
    per = -(-len(files) // max(1, parts))
    return [
        [start + i for i in group]
        for start in range(0, len(files), per)
        for group in plan(files[start : start + per], batch_bytes)
    ]


def _retrying(cfg: Config, step: str, fn: Callable[[], Any]) -> Any:
    return with_retries(step, fn, attempts=cfg.run.attempts, base_delay=cfg.run.retry_base_seconds)


def read_song_group(cfg: Config, files: list[SourceFile]) -> Extracted:
    """Fetch and parse a group of song files."""
    fs, _ = open_fs(cfg.source.song_data, cfg.storage_options())
    x: Extracted = _retrying(
        cfg, "reading song_data", lambda: extract(SONG_SOURCE, fs, files, concurrency=cfg.source.concurrency)
    )
    return x


def merge_song_groups(files: list[SourceFile], groups: list[list[int]], results: list[Extracted]) -> Extracted:
    """The groups' extractions as one (``_file`` indexes ``files``); groups are runs of consecutive files."""
    if not results:
        return extract_segments(SONG_SOURCE, [], [])
    frames = []
    for group, x in zip(groups, results, strict=True):
        frame = x.frame
        frame[FILE_COL] = frame[FILE_COL] + group[0]
        frames.append(frame)

    def shifted(attr: str) -> set[int]:
        return {group[0] + i for group, x in zip(groups, results, strict=True) for i in getattr(x, attr)}

    return Extracted(
        spec=SONG_SOURCE,
        files=files,
        frame=pd.concat(frames, ignore_index=True),
        rejects=[r for x in results for r in x.rejects],
        bytes_read=sum(x.bytes_read for x in results),
        # Files no task could read stay out of the ledger, as on one process.
        unread=shifted("unread"),
        vanished=shifted("vanished"),
        whole=shifted("whole"),
    )


@dataclass
class GroupResult:
    outcomes: list[BatchOutcome]
    # Wall seconds the task took, its wait for the song lookup included: the longest is the run's span over its
    # batches.
    seconds: float
    # CPU seconds it used: the run's work.
    cpu: float


def process_group(
    cfg: Config,
    run_id: str,
    task: int,
    files: list[SourceFile],
    lookup: Callable[[], pd.DataFrame],
    guard: ShrinkGuard | None,
    batch_bytes: int,
    node: str = "",
) -> GroupResult:
    """Read, parse, transform and stage a group of log files, batch by batch (``engine.process_batch``).
    ``lookup`` is asked for once the first batch is parsed: a worker may start before the song side ends."""
    from pipeline.ops import aws

    start, cpu = time.perf_counter(), time.process_time()
    if cfg.staging.path.startswith("s3://") or cfg.warehouse.target == "redshift":
        aws.configure_wrangler(cfg)  # awswrangler in-process, on pandas frames, in this worker too
    fs, _ = open_fs(cfg.source.log_data, cfg.storage_options())
    session = aws.session(cfg) if cfg.staging.path.startswith("s3://") else None

    def retry(step: str, fn: Callable[[], Any]) -> Any:
        return _retrying(cfg, step, fn)

    stager = Stager(cfg.staging.path, run_id, session, retry=retry)
    out = []
    with closing(stager):
        for k, segments in enumerate(read_batches(fs, files, batch_bytes, cfg.source.concurrency, retry)):
            x = extract_segments(LOG_SOURCE, files, segments)
            outcome = process_batch(x, lookup(), stager, f"t{task:05d}-{k:03d}", guard=guard)
            outcome.node = node
            out.append(outcome)
            del x
            memory.release()  # as a run does after each batch: the next one reuses what this one freed
            faults.checkpoint("task-batch")
        stager.flush()  # the task's files are written before it reports them
    return GroupResult(out, time.perf_counter() - start, time.process_time() - cpu)
