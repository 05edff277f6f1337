"""One pipeline run: discover -> extract -> transform -> stage -> load (with reconciliation and checks).

This is the only module that sequences the stages; each stage is a plain function elsewhere, so a notebook
can call any of them alone. A run is incremental by default: the ledger in the warehouse says which files
were loaded, and only new or changed ones are read. Whatever the order files arrive in, the tables end as
one run over every file would leave them (see ``reconcile.py``).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import pandas as pd

from pipeline.core.config import Config, check_window
from pipeline.core.errors import Interrupted, TooManyRejects
from pipeline.core.schema import EVENT_RECORDS, LOADED_FILES, LOOKUP_CHANGES, RUN_FILES, SONG_RECORDS, Table
from pipeline.demo.dataset import ensure_demo_data
from pipeline.extract.ahead import Listings
from pipeline.extract.discover import SourceFile, discover
from pipeline.extract.formats import suffix_of
from pipeline.extract.records import Extracted, Reject
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE, SourceSpec
from pipeline.load import destination_for
from pipeline.load import stage as staging
from pipeline.load.base import Destination
from pipeline.load.staged import Staged
from pipeline.ops import aws, faults, logs, memory, signals
from pipeline.ops.lock import new_run_id, single_flight
from pipeline.ops.retry import with_retries
from pipeline.reconcile.partials import RunPartials
from pipeline.reconcile.reconciler import reconciler
from pipeline.run import metrics
from pipeline.run.engine import BatchOutcome, Engine, Outcomes, process_batch
from pipeline.run.engines import engine_for
from pipeline.run.housekeeping import clean_staging
from pipeline.run.redelivery import Held, ShrinkGuard, held_by_size
from pipeline.run.rejects import RejectWeights, append_rejects, weigh_rejects
from pipeline.run.selection import RunOptions, ledger_frame, select_files
from pipeline.run.summary import Summary
from pipeline.transform import batch, catalogue, frames

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


@dataclass
class _Listed:
    """What the run's preparation found: the files to read, those gone from the source, the logs' outcomes (begun),
    and the stored catalogue."""

    log_files: list[SourceFile]
    log_gone: list[str]
    log_outcomes: Outcomes
    song_fs: Any
    song_files: list[SourceFile]
    song_gone: list[str]
    song_guard: ShrinkGuard | None
    stored_songs: pd.DataFrame
    # Files of this run loaded before: only they can replace stored records.
    redelivered: set[str]


class _Run:
    """The state of one run, so each stage is a short method."""

    def __init__(self, cfg: Config, options: RunOptions, run_id: str, listings: Listings | None = None):
        self.cfg = cfg
        self.options = options
        self.run_id = run_id
        self.listings = listings
        self.ledger: dict[str, tuple[str, int, str]] = {}
        self.weights: dict[str, RejectWeights] = {}
        self.committed = False
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

    def execute(self) -> Summary:
        stager = staging.Stager(self.cfg.staging.path, self.run_id, self.session, retry=self.retry)
        # Closed whatever happens: a failed run leaves no thread writing its staged files behind it.
        with closing(stager):
            return self._execute(stager)

    def _execute(self, stager: staging.Stager) -> Summary:
        engine = engine_for(self.cfg)
        lookup: Future[pd.DataFrame] = Future()
        listed = self._prepare(engine, stager, lookup)
        with closing(listed.log_outcomes):
            partials = self._batches(engine, stager, listed, lookup)
        self.summary.engine = engine.name
        self.summary.ray_tasks = dict(engine.tasks)
        self.summary.ray_nodes_used = len(engine.nodes)
        self.check_rejects()
        faults.checkpoint("extracted")
        staged = self._stage_run(stager, listed)
        faults.checkpoint("staged")
        self._load(staged, partials)
        return self._after_load(staged)

    def _prepare(self, engine: Engine, stager: staging.Stager, lookup: Future[pd.DataFrame]) -> _Listed:
        """What the run reads from the warehouse before the load, on one connection closed before the batches (a
        DuckDB file is held by one process at a time, and readers can use it until the load); the logs' batches
        start meanwhile."""
        cfg, full = self.cfg, self.options.full_refresh
        with self.timed("prepare"), self.dest.pinned():
            ensure_demo_data(cfg)
            # A connection of its own since the bookkeeping's closed: retried like that one (a notebook may hold
            # the file in between).
            self.retry("checking the schema", self.dest.check_schema)
            ledger = self.retry("reading the ledger", self.dest.loaded_files)
            self.ledger = ledger
            log_fs, log_files, log_gone = self.list_source(cfg.source.log_data, LOG_SOURCE, ledger)
            log_guard = self.shrink_guard(EVENT_RECORDS, log_files)
            log_files, held = held_by_size(log_files, ledger, log_guard, cfg.source.batch_bytes)
            self.count(LOG_SOURCE.name, 0, [], 0, [], held=held)
            # The engine may start reading the logs now, while the song files are listed and read: a batch waits
            # for the lookup only to be matched. Closed whatever happens, so nothing goes on parsing after a
            # failure.
            log_outcomes = engine.process_logs(log_fs, log_files, lookup, stager, self.timed, log_guard)
            try:
                song_fs, song_files, song_gone = self.list_source(cfg.source.song_data, SONG_SOURCE, ledger)
                song_guard = self.shrink_guard(SONG_RECORDS, song_files)
                redelivered = {f.url for f in (*song_files, *log_files) if f.url in ledger}
                for url in sorted(self.options.accept_shrunk - redelivered - self.kept()):
                    log.warning("--accept-shrunk %s: not a re-delivered file this run reads; nothing to accept", url)
                # Listed first, so a run that reads no song file reads only what the lookup is derived from.
                located = bool(song_files) or full
                stored_songs = self.retry(
                    "reading the catalogue", lambda: self.dest.stored_records(SONG_RECORDS, located=located)
                )
            except BaseException:
                log_outcomes.close()
                raise
        return _Listed(
            log_files, log_gone, log_outcomes, song_fs, song_files, song_gone, song_guard, stored_songs, redelivered
        )

    def _batches(
        self, engine: Engine, stager: staging.Stager, listed: _Listed, lookup: Future[pd.DataFrame]
    ) -> RunPartials:
        """The song side, then every log batch's outcome counted, recorded and set aside for the load."""
        full = self.options.full_refresh
        song_lookup = self.song_side(
            engine, stager, listed.song_fs, listed.song_files, listed.song_gone, listed.stored_songs, listed.song_guard
        )
        lookup.set_result(song_lookup)
        listed.stored_songs = listed.stored_songs.iloc[:0]
        partials = RunPartials(
            lookup=song_lookup,
            # Records derived again in one go: about a batch's worth (a log event is 300-400 bytes of JSON).
            chunk_records=max(10_000, self.cfg.source.batch_bytes // 400),
            # Files loaded before and read again: only then can stored records be replaced.
            redelivered=bool(listed.redelivered) and not full,
        )
        outcomes: Iterator[BatchOutcome] = listed.log_outcomes
        if full:
            # Rebuilt from scratch: log files that left the source, and those this run could not take as they
            # stand (unreadable, gone, held), keep their rows from their kept records. Known once every batch is
            # in: the chain asks for these last.
            outcomes = itertools.chain(outcomes, self.kept_log_batches(listed.log_gone, song_lookup, stager))
        for outcome in outcomes:
            self.count(
                LOG_SOURCE.name,
                outcome.records,
                outcome.rejects,
                outcome.bytes_read,
                outcome.unread,
                outcome.vanished,
                outcome.held,
            )
            self.summary.fields_repaired += outcome.repaired
            for name, path, rows in outcome.parts:
                stager.record(name, path, rows)
            with self.timed("transform"):
                partials.add(outcome.users, outcome.level_points)
                # Hand back what the batch's frames freed (pyarrow's pool, glibc's heap), so the next batch reuses
                # it rather than growing the process.
                del outcome
                memory.release()
            log.info("batch staged (%s records so far)", f"{self.summary.records_read.get(LOG_SOURCE.name, 0):,}")
        return partials

    def _stage_run(self, stager: staging.Stager, listed: _Listed) -> Staged:
        """The run's file list and ledger rows beside its batches' parts. A file that could not be read, is gone
        or is held keeps what it had: its records are not replaced, nor its ledger row."""
        with self.timed("stage"):
            kept = self.kept()
            song_read = [f for f in listed.song_files if f.url not in kept]
            log_read = [f for f in listed.log_files if f.url not in kept]
            run_files = sorted({f.url for f in (*song_read, *log_read)})
            stager.add(
                {
                    RUN_FILES.name: pd.DataFrame({"file": pd.array(run_files, dtype="string[pyarrow]")}),
                    LOADED_FILES.name: ledger_frame(song_read, log_read, self.run_id, utcnow()),
                }
            )
            return stager.finish()

    def _load(self, staged: Staged, partials: RunPartials) -> None:
        before = memory.rss_mb()
        memory.release()
        log.debug("memory before the load: %.0f MB resident, %.0f MB after release", before, memory.rss_mb())
        full = self.options.full_refresh
        with self.timed("load"):
            try:
                result = self.retry("loading", lambda: self.dest.load(staged, reconciler(partials), full_refresh=full))
            except BaseException as exc:
                exc.add_note(f"staged files kept for inspection in {staged.location}/")
                raise
        self.committed = True
        s = self.summary
        s.rows_merged = {k: v for k, v in result.rows_merged.items() if not k.startswith("_")}
        s.rows_total = result.rows_total
        s.plays_matched = result.plays_matched
        s.reconciled = result.stats

    def _after_load(self, staged: Staged) -> Summary:
        """The load is committed: its staged files go, and the read copy for analysts is published."""
        s = self.summary
        if not self.cfg.staging.keep:
            staging.remove(staged, self.session)
        try:
            s.read_copy = self.dest.publish()
            if s.read_copy:
                log.info("read copy for analysts published: %s", s.read_copy)
        except Exception as exc:  # the load is committed; analysts read the previous copy until the next run
            if signals.received() is not None:
                raise
            log.warning("could not publish the read copy of the warehouse (analysts see the previous one): %s", exc)
        if s.files_held:
            s.error = f"{len(s.files_held)} re-delivered file(s) held back; the versions loaded before stay"
        s.status = "succeeded"
        return s

    def song_side(
        self,
        engine: Engine,
        stager: staging.Stager,
        song_fs: Any,
        song_files: list[SourceFile],
        song_gone: list[str],
        stored_songs: pd.DataFrame,
        guard: ShrinkGuard | None,
    ) -> pd.DataFrame:
        """Read the run's song files, stage what they change in the catalogue, and return its lookup."""
        full = self.options.full_refresh
        # Songs first, in one batch: the catalogue is small, every log batch needs its lookup, and a run that
        # changes it must match stored plays again.
        with self.timed("extract"):
            song_x = engine.read_songs(song_fs, song_files)
        faults.checkpoint("songs-read")
        held: list[Held] = []
        if guard is not None:
            song_x, held = guard.hold(song_x)
        self.count(
            SONG_SOURCE.name,
            song_x.records,
            song_x.rejects,
            song_x.bytes_read,
            [song_x.files[i].url for i in sorted(song_x.unread)],
            [song_x.files[i].url for i in sorted(song_x.vanished)],
            held,
        )
        # Files read but not taken as they stand (unreadable, gone, held) keep the records they had.
        kept_urls = [song_x.files[i].url for i in sorted(song_x.unread | song_x.vanished | song_x.held)]
        if not song_files and not full:
            # No song file read: the catalogue is the stored one and nothing in it changes; the run needs only its
            # lookup, not the songs and artists too.
            with self.timed("transform"):
                return catalogue.song_lookup(frames.records_frame(stored_songs, SONG_SOURCE)[0])
        with self.timed("transform"):
            fresh = batch.song_records(song_x.frame, [f.url for f in song_x.files])
            if full:
                # Rebuilt from scratch: every file as the source has it now, and the kept records of song files
                # that have since left the source (a file that disappears deletes nothing) or were kept.
                kept = stored_songs.loc[batch.from_files(stored_songs, [*song_gone, *kept_urls])]
                staged_records = current = frames.concat([kept, fresh])
                old = catalogue.catalogue(frames.records_frame(stored_songs.iloc[:0], SONG_SOURCE)[0])
            else:
                reread = {f.url for f in song_files} - set(kept_urls)
                current = frames.concat([stored_songs.loc[~batch.from_files(stored_songs, reread)], fresh])
                staged_records = fresh
                old = catalogue.catalogue(frames.records_frame(stored_songs, SONG_SOURCE)[0])
            new = catalogue.catalogue(frames.records_frame(current, SONG_SOURCE)[0])
            changes = catalogue.catalogue_changes(new, old)
        with self.timed("stage"):
            stager.add(
                {
                    SONG_RECORDS.name: staged_records,
                    "songs": changes.songs,
                    "songs_keys": changes.songs_gone,
                    "artists": changes.artists,
                    "artists_keys": changes.artists_gone,
                    LOOKUP_CHANGES.name: changes.lookup,
                }
            )
        return new.lookup

    def kept_log_batches(self, gone: list[str], lookup: pd.DataFrame, stager: staging.Stager) -> Iterator[BatchOutcome]:
        """A full refresh's log files that have left the source, or that this run kept as they were (unreadable,
        gone since the listing, held): their kept records, through the same batches. A generator: it reads which
        files were kept when it is first asked, after the source's batches."""
        kept = self.kept()
        urls = [*gone, *sorted(u for u in kept if u in self.ledger and self.ledger[u][0] == LOG_SOURCE.name)]
        budget = self.cfg.source.batch_bytes
        group: list[str] = []
        sizes = 0
        batches: list[list[str]] = []
        for url in urls:
            group.append(url)
            sizes += self.ledger[url][1]
            if sizes >= budget:
                batches.append(group)
                group, sizes = [], 0
        if group:
            batches.append(group)
        for n, urls_of_batch in enumerate(batches):
            records = self.retry(
                "reading kept records", partial(self.dest.stored_records, EVENT_RECORDS, urls_of_batch)
            )
            frame, files = frames.records_frame(records, LOG_SOURCE)
            x = Extracted(LOG_SOURCE, [SourceFile(path=u, url=u, size=0, version="") for u in files], frame)
            yield process_batch(x, lookup, stager, f"kept-{n:05d}", self.timed)

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


def run(
    cfg: Config,
    options: RunOptions | None = None,
    run_id: str | None = None,
    listings: Listings | None = None,
    locked: bool = False,
) -> Summary:
    """Run the pipeline once, holding the run lock. Raises on failure, with ``summary`` attached.

    ``listings`` are the sources' listings begun ahead (``ahead.list_ahead``); without them the run lists.
    ``locked``: the caller holds the run lock already, for ``run_id`` (the command line takes it before it lists
    ahead)."""
    options = options or RunOptions()
    check_window(options.full_refresh, options.since, options.until)
    run_id = run_id or new_run_id()
    with nullcontext() if locked else single_flight(cfg.run.lock_path, run_id):
        return _run(_Run(cfg, options, run_id, listings))


def _run(r: _Run) -> Summary:
    """The run itself, on the destination's one connection where it keeps one (DuckDB)."""
    cfg, run_id = r.cfg, r.run_id
    started = utcnow()
    try:
        with r.dest.pinned():
            r.retry("creating the schema", r.dest.create_schema)
            abandoned = r.retry("recording the run", lambda: r.dest.start_run(run_id, started))
            if abandoned:
                log.warning(
                    "%d earlier run(s) had been killed mid-way; marked abandoned (their loads rolled back)", abandoned
                )
            try:
                clean_staging(cfg, r.dest, run_id)
            except Exception as exc:  # housekeeping: it never fails a night's load, but never swallows a signal
                if signals.received() is not None:
                    raise
                log.warning("could not clean up old staging folders under %s: %s", cfg.staging.path, exc)
        summary = r.execute()
    except BaseException as exc:
        sig = signals.received()
        if not r.committed:
            # Interrupted between the commit and the return of the load: its own row says so (written in the
            # load's transaction).
            r.committed = _committed(r)
        if r.committed:
            # Interrupted after the load committed: the data is in, whatever came after.
            r.summary.status = "succeeded"
            r.summary.error = logs.redact(f"after the load committed: {type(exc).__name__}: {exc}")
        elif sig is not None:
            r.summary.status = "interrupted"
            r.summary.error = f"interrupted by {Interrupted(sig).name}; the load, if it had started, was rolled back"
        else:
            r.summary.status = "failed"
            r.summary.error = logs.redact(f"{type(exc).__name__}: {exc}")
        _record_end(r, started)
        exc.summary = r.summary  # type: ignore[attr-defined]
        raise
    _record_end(r, started)
    return summary


def _committed(r: _Run) -> bool:
    try:
        return r.dest.run_status(r.run_id) == "succeeded"
    except Exception:  # the warehouse may be what failed: then nothing says the load is in
        return False


def _record_end(r: _Run, started: datetime) -> None:
    s = r.summary
    try:
        r.dest.end_run(
            r.run_id,
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
        log.warning("could not record the end of run %s in the run history: %s", r.run_id, exc)
    if r.cfg.run.metrics_path:
        try:
            metrics.write(r.cfg.run.metrics_path, s, time.time())
        except Exception as exc:  # monitoring must not change the run's outcome or hide its error
            log.warning("could not write the run's metrics to %s: %s", r.cfg.run.metrics_path, exc)


def history(cfg: Config, limit: int = 20) -> list[dict[str, Any]]:
    return destination_for(cfg).run_history(limit)
