"""The state of one run and its bookkeeping: listing a source, counting what was read and rejected, the
shrink guard, the reject threshold, and recording the run's end. The sequencing is ``runner.py``'s."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar

from pipeline.core.config import Config
from pipeline.core.errors import TooManyRejects
from pipeline.core.schema import Table
from pipeline.extract.ahead import Listings
from pipeline.extract.discover import SourceFile, discover
from pipeline.extract.formats import suffix_of
from pipeline.extract.records import Reject
from pipeline.extract.sources import LOG_SOURCE, SourceSpec
from pipeline.load import destination_for
from pipeline.load.base import Destination
from pipeline.ops import aws, memory
from pipeline.ops.retry import with_retries
from pipeline.run import metrics
from pipeline.run.redelivery import Held, ShrinkGuard
from pipeline.run.rejects import RejectWeights, append_rejects, weigh_rejects
from pipeline.run.selection import RunOptions, select_files
from pipeline.run.summary import Summary

log = logging.getLogger(__name__)
R = TypeVar("R")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@contextmanager
def _timed(summary: Summary, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    token = memory.sampler().begin()
    log.info("%s ...", stage)
    try:
        yield
    finally:
        # Stages repeat once per batch: seconds add up, the peak is the highest of any batch.
        took = time.perf_counter() - start
        summary.seconds[stage] = round(summary.seconds.get(stage, 0.0) + took, 3)
        peak = memory.sampler().end(token)
        summary.peak_memory_mb[stage] = round(max(summary.peak_memory_mb.get(stage, 0.0), peak), 1)
        log.debug("%s: %.2f s (peak memory %.0f MB)", stage, took, summary.peak_memory_mb[stage])


class RunContext:
    """The state of one run, shared by its steps."""

    def __init__(self, cfg: Config, options: RunOptions, run_id: str, listings: Listings | None = None):
        self.cfg = cfg
        self.options = options
        self.run_id = run_id
        self.listings = listings
        self.ledger: dict[str, tuple[str, int, str]] = {}
        self.weights: dict[str, RejectWeights] = {}
        self.committed = False
        self.began, self.cpu_began = time.perf_counter(), time.process_time()
        # CPU seconds of the tasks run apart from this process (worker processes).
        self.task_cpu = 0.0
        # The batches' phase: its wall seconds, and the longest task run apart from this process (0: none).
        self.batch_phase = (0.0, 0.0)
        self.dest: Destination = destination_for(cfg)
        self.summary = Summary(
            run_id=run_id, target=self.dest.describe(), mode="full refresh" if options.full_refresh else "incremental"
        )
        self.session = None
        if cfg.staging.path.startswith("s3://") or cfg.warehouse.target == "redshift":
            aws.configure_wrangler(cfg)
        if cfg.staging.path.startswith("s3://"):
            self.session = aws.session(cfg)

    def retry(self, step: str, fn: Callable[[], R]) -> R:
        return with_retries(step, fn, attempts=self.cfg.run.attempts, base_delay=self.cfg.run.retry_base_seconds)

    def timed(self, stage: str) -> AbstractContextManager[None]:
        return _timed(self.summary, stage)

    def list_source(
        self, url: str, spec: SourceSpec, ledger: dict[str, tuple[str, int, str]]
    ) -> tuple[Any, list[SourceFile], list[str]]:
        """The source's files this run reads, and the loaded files of this source that it no longer lists."""
        suffix = suffix_of(spec.format)
        ahead = self.listings.first_attempt(url, suffix) if self.listings else None

        def list_once() -> tuple[Any, list[SourceFile]]:
            nonlocal ahead
            if ahead is not None:
                first, ahead = ahead, None
                listed = first()
                if listed is not None:
                    log.debug("%s: listed while the run started", spec.name)
                    return listed
                log.debug("%s: not listed ahead after all: listing now", spec.name)
            return discover(url, self.cfg.storage_options(), suffix)

        fs, files = self.retry(f"listing {url}", list_once)
        chosen, skipped = select_files(files, ledger, self.options, windowed=spec is LOG_SOURCE)
        listed = {f.url for f in files}
        gone = sorted(u for u, (source, _, _) in ledger.items() if source == spec.name and u not in listed)
        if not files:
            log.warning("%s: no data files under %s: nothing to read from it", spec.name, url)
        self.summary.files_skipped[spec.name] = skipped
        self.summary.files_read[spec.name] = len(chosen)
        log.info(
            "%s: %d files under %s, %d to read, %d already loaded", spec.name, len(files), url, len(chosen), skipped
        )
        return fs, chosen, gone

    def count(
        self,
        source: str,
        records: int,
        rejects: list[Reject],
        bytes_read: int,
        unread: Sequence[str],
        vanished: Sequence[str] = (),
        held: Sequence[Held] = (),
    ) -> None:
        s = self.summary
        s.records_read[source] = s.records_read.get(source, 0) + records
        s.records_rejected[source] = s.records_rejected.get(source, 0) + len(rejects)
        s.bytes_read += bytes_read
        s.bytes_rejected += sum(r.size for r in rejects)
        s.files_unread += unread
        s.files_vanished += vanished
        s.files_held += [asdict(h) for h in held]
        # A loaded file that cannot be read now keeps what it had: its rejection loses nothing, so it weighs
        # nothing (it is still reported, kept in the rejects file, and read again by the next run).
        loaded = {u for u in unread if u in self.ledger}
        losing = [r for r in rejects if not (r.line is None and r.file in loaded)]
        kept_bytes = sum(r.size for r in rejects) - sum(r.size for r in losing)
        self.weights.setdefault(source, RejectWeights()).add(
            records - (len(rejects) - len(losing)), bytes_read - kept_bytes, losing
        )
        for url in vanished:
            log.warning("%s: %s is gone since it was listed; left as it was", source, url)
        for h in held:
            log.warning(
                "%s: re-delivered %s has %d %s against the %d loaded from the version it replaces "
                "(over rejects.max_shrink %.0f%%): held back, the loaded version stays",
                source,
                h.url,
                h.records,
                h.unit,
                h.stored,
                self.cfg.rejects.max_shrink * 100,
            )
        if rejects:
            s.rejects_file = append_rejects(rejects, self.cfg.rejects.path, self.run_id)

    def kept(self) -> set[str]:
        """Files listed for this run that keep what they had: unreadable, gone since the listing, or held."""
        s = self.summary
        return {*s.files_unread, *s.files_vanished, *(h["url"] for h in s.files_held)}

    def shrink_guard(self, table: Table, files: list[SourceFile]) -> ShrinkGuard | None:
        """The guard for this run's re-delivered files of one source (all loaded files on a full refresh)."""
        if self.cfg.rejects.max_shrink >= 1.0:
            return None
        urls = [f.url for f in files if f.url in self.ledger]
        if not urls:
            return None
        stored = self.retry("counting the stored records", lambda: self.dest.record_counts(table, urls))
        return ShrinkGuard(stored, self.cfg.rejects.max_shrink, self.options.accept_shrunk)

    def check_rejects(self) -> None:
        """Fail before loading when rejected input weighs more than ``rejects.max_fraction`` of what was read
        (see ``weigh_rejects``)."""
        s = self.summary
        rejected, total = weigh_rejects(self.weights.values())
        s.rejected_ratio = rejected / total if total else 0.0
        if s.rejected_ratio > self.cfg.rejects.max_fraction:
            raise TooManyRejects(
                f"rejected records weigh {rejected:,.0f} of the {total:,.0f} records read ({s.rejected_ratio:.2%}; "
                f"{sum(s.records_rejected.values()):,} rejects, a whole unreadable file weighed as the records its "
                f"size holds), over rejects.max_fraction {self.cfg.rejects.max_fraction:.2%}; nothing was loaded. "
                f"See {s.rejects_file}"
            )

    def committed_in_warehouse(self) -> bool:
        """Whether the warehouse records this run as succeeded (its load committed)."""
        try:
            return self.dest.run_status(self.run_id) == "succeeded"
        except Exception:  # the warehouse may be what failed: then nothing says the load is in
            return False

    def record_end(self, started: datetime) -> None:
        """The run's row in the history, and the metrics file; neither may change the run's outcome."""
        s = self.summary
        wall = time.perf_counter() - self.began
        phase, longest = self.batch_phase
        s.work_seconds = round(time.process_time() - self.cpu_began + self.task_cpu, 2)
        s.span_seconds = round(wall - phase + longest if longest else wall, 2)
        try:
            self.dest.end_run(
                self.run_id,
                {
                    "ended_at": utcnow(),
                    "status": s.status,
                    "files_read": sum(s.files_read.values()),
                    "records_read": sum(s.records_read.values()),
                    "records_rejected": sum(s.records_rejected.values()),
                    "rows_merged": json.dumps(s.rows_merged),
                    "error": s.error,
                },
            )
        except Exception as exc:  # the warehouse may be what failed; the summary still reaches the log
            log.warning("could not record the end of run %s in the run history: %s", self.run_id, exc)
        if self.cfg.run.metrics_path:
            try:
                metrics.write(self.cfg.run.metrics_path, s, time.time())
            except Exception as exc:  # monitoring must not change the run's outcome or hide its error
                log.warning("could not write the run's metrics to %s: %s", self.cfg.run.metrics_path, exc)
