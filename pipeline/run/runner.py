"""One pipeline run: discover -> extract -> transform -> stage -> load (with reconciliation and checks).

This is the only module that sequences the stages; each stage is a plain function elsewhere, so a notebook
can call any of them alone. A run is incremental by default: the ledger in the warehouse says which files
were loaded, and only new or changed ones are read. Whatever the order files arrive in, the tables end as
one run over every file would leave them (see ``pipeline/reconcile/``). The run's state and bookkeeping
are ``context.py``'s; its song side ``songs.py``'s.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import closing, nullcontext
from typing import Any

import pandas as pd

from pipeline.core.config import Config, check_window
from pipeline.core.errors import Interrupted
from pipeline.core.schema import LOADED_FILES, RUN_FILES
from pipeline.extract.ahead import Listings
from pipeline.extract.sources import LOG_SOURCE
from pipeline.load import destination_for
from pipeline.load import stage as staging
from pipeline.load.staged import Staged
from pipeline.ops import faults, logs, memory, signals
from pipeline.ops.lock import new_run_id, single_flight
from pipeline.reconcile.partials import RunPartials
from pipeline.reconcile.reconciler import reconciler
from pipeline.run.context import RunContext, utcnow
from pipeline.run.engine import BatchOutcome, Engine
from pipeline.run.engines import engine_for
from pipeline.run.housekeeping import clean_staging
from pipeline.run.kept import kept_log_batches
from pipeline.run.prepare import Listed, prepare
from pipeline.run.selection import RunOptions, ledger_frame
from pipeline.run.songs import song_side
from pipeline.run.summary import Summary

log = logging.getLogger(__name__)


class _Run(RunContext):
    """One run's steps, in order."""

    def execute(self) -> Summary:
        stager = staging.Stager(self.cfg.staging.path, self.run_id, self.session, retry=self.retry)
        # Closed whatever happens: a failed run leaves no thread writing its staged files behind it.
        with closing(stager):
            return self._execute(stager)

    def _execute(self, stager: staging.Stager) -> Summary:
        engine = engine_for(self.cfg)
        # Closed once the batches are in (its workers' memory is the load's), or as soon as anything fails.
        try:
            lookup: Future[pd.DataFrame] = Future()
            listed = prepare(self, engine, stager, lookup)
            began = time.perf_counter()
            with closing(listed.log_outcomes):
                partials = self._batches(engine, stager, listed, lookup)
            self.batch_phase = (time.perf_counter() - began, max(engine.task_seconds, default=0.0))
        finally:
            engine.close()
            self.summary.workers = engine.workers
            self.task_cpu = engine.task_cpu
        self.summary.engine = engine.name
        self.summary.ray_tasks = dict(engine.tasks)
        self.summary.ray_nodes_used = len(engine.nodes)
        self.check_rejects()
        faults.checkpoint("extracted")
        staged = self._stage_run(stager, listed)
        faults.checkpoint("staged")
        self._load(staged, partials)
        return self._after_load(staged)

    def _batches(
        self, engine: Engine, stager: staging.Stager, listed: Listed, lookup: Future[pd.DataFrame]
    ) -> RunPartials:
        """The song side, then every log batch's outcome counted, recorded and set aside for the load."""
        full = self.options.full_refresh
        song_lookup = song_side(self, engine, stager, listed)
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
            outcomes = itertools.chain(outcomes, kept_log_batches(self, listed.log_gone, song_lookup, stager))
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

    def _stage_run(self, stager: staging.Stager, listed: Listed) -> Staged:
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
                audit_days = 0 if self.options.audit else self.cfg.run.audit_days
                result = self.retry(
                    "loading",
                    lambda: self.dest.load(staged, reconciler(partials), full_refresh=full, audit_days=audit_days),
                )
            except BaseException as exc:
                exc.add_note(f"staged files kept for inspection in {staged.location}/")
                raise
        self.committed = True
        s = self.summary
        s.rows_merged = {k: v for k, v in result.rows_merged.items() if not k.startswith("_")}
        s.rows_total = result.rows_total
        s.plays_matched = result.plays_matched
        s.reconciled = result.stats
        s.checks = "audit" if result.audited else "night"

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
            r.committed = r.committed_in_warehouse()
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
        r.record_end(started)
        exc.summary = r.summary  # type: ignore[attr-defined]
        raise
    r.record_end(started)
    return summary


def history(cfg: Config, limit: int = 20) -> list[dict[str, Any]]:
    return destination_for(cfg).run_history(limit)
