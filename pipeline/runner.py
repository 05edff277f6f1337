"""One pipeline run: discover -> extract -> transform -> stage -> load (with checks), timed per stage.

This is the only module that sequences the stages; each stage is a plain function elsewhere, so a
notebook can call any of them alone. A run is incremental by default: the ledger in the warehouse says
which files were loaded, and only new or changed ones are read.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from . import aws, faults, memory
from . import stage as staging
from . import transform as T
from .config import Config, is_url
from .discover import SourceFile, discover
from .extract import Extracted, Reject, extract, extract_segments, read_batches
from .generate import generate, is_empty
from .load import destination_for
from .load.base import Destination
from .lock import single_flight
from .progress import Progress
from .retry import with_retries
from .sources import LOG_SOURCE, SONG_SOURCE, SourceSpec

log = logging.getLogger(__name__)
R = TypeVar("R")

_DATE_IN_PATH = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


class TooManyRejects(RuntimeError):
    pass


@dataclass(frozen=True)
class RunOptions:
    full_refresh: bool = False
    # Inclusive window on the date in each log file's name (YYYY-MM-DD), for backfills.
    since: date | None = None
    until: date | None = None


@dataclass
class Summary:
    run_id: str
    target: str
    mode: str = "incremental"
    status: str = "running"
    files_read: dict[str, int] = field(default_factory=dict)
    files_skipped: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    records_read: dict[str, int] = field(default_factory=dict)
    records_rejected: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    rows_merged: dict[str, int] = field(default_factory=dict)
    rows_total: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    engine: str = "local"
    ray_nodes_used: int = 0
    ray_tasks: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_text(self) -> str:
        total = sum(self.seconds.values())
        lines = [f"run {self.run_id} -> {self.target} ({self.mode}): {self.status}"]
        for src in self.files_read:
            lines.append(
                f"  {src:10} {self.files_read[src]:>9,} files  {self.records_read.get(src, 0):>11,} records"
                f"  {self.records_rejected.get(src, 0):>7,} rejected"
                f"  ({self.files_skipped.get(src, 0):,} files already loaded, skipped)"
            )
        if self.rejects_file:
            lines.append(f"  rejected records kept in {self.rejects_file}")
        if self.rows_merged:
            lines.append("  rows written (staged and merged) / rows in table after the run:")
            for t, n in self.rows_merged.items():
                if not t.startswith("_"):
                    lines.append(f"    {t:10} {n:>11,} / {self.rows_total.get(t, 0):>11,}")
        lines.append(
            "  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items()) + f"; total {total:.2f}"
        )
        if self.peak_memory_mb:
            lines.append(f"  peak memory: {max(self.peak_memory_mb.values()):,.0f} MB")
        if self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@contextmanager
def _timed(summary: Summary, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    memory.reset_peak()
    log.info("%s ...", stage)
    try:
        yield
    finally:
        # Stages repeat once per batch: seconds add up, the peak is the highest of any batch.
        took = time.perf_counter() - start
        summary.seconds[stage] = round(summary.seconds.get(stage, 0.0) + took, 3)
        summary.peak_memory_mb[stage] = round(max(summary.peak_memory_mb.get(stage, 0.0), memory.peak_mb()), 1)
        log.debug("%s: %.2f s (peak memory %.0f MB)", stage, took, summary.peak_memory_mb[stage])


def ensure_demo_data(cfg: Config) -> bool:
    """Fill empty local source folders with the synthetic demo dataset, so a fresh clone just runs."""
    if not cfg.demo.generate_if_empty or is_url(cfg.source.song_data) or is_url(cfg.source.log_data):
        return False
    songs, logs = Path(cfg.source.song_data), Path(cfg.source.log_data)
    if not (is_empty(songs) and is_empty(logs)):
        return False
    log.info(
        "source folders are empty: generating the demo dataset (%d songs, %d events)", cfg.demo.songs, cfg.demo.events
    )
    generate(songs, logs, songs=cfg.demo.songs, events=cfg.demo.events, seed=cfg.demo.seed)
    return True


def append_rejects(rejects: list[Reject], root: str, run_id: str) -> str:
    """Keep every rejected record, with where it came from and why, as JSON lines (one file per run)."""
    body = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rejects).encode()
    if is_url(root):
        import fsspec

        # Object stores cannot append: each batch's rejects go to their own object under the run's prefix.
        path = f"{root.rstrip('/')}/{run_id}/{secrets.token_hex(4)}.jsonl"
        with fsspec.open(path, "wb") as fh:
            fh.write(body)
        return f"{root.rstrip('/')}/{run_id}/"
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, f"{run_id}.jsonl")
    with open(path, "ab") as fh:
        fh.write(body)
    return path


def file_date(path: str) -> date | None:
    m = _DATE_IN_PATH.search(path.rsplit("/", 1)[-1])
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def select_files(
    files: list[SourceFile], ledger: dict[str, tuple[int, str]], options: RunOptions, windowed: bool
) -> tuple[list[SourceFile], int]:
    """The files this run reads: new or changed since the ledger (all on a full refresh), in the window."""
    chosen: list[SourceFile] = []
    skipped = 0
    for f in files:
        if windowed and (options.since or options.until):
            d = file_date(f.path)
            if d is None or (options.since and d < options.since) or (options.until and d > options.until):
                continue
        if not options.full_refresh and ledger.get(f.url) == (f.size, f.version):
            skipped += 1
            continue
        chosen.append(f)
    return chosen, skipped


def ledger_frame(song_files: list[SourceFile], log_files: list[SourceFile], run_id: str, now: datetime) -> pd.DataFrame:
    rows = [
        {"url": f.url, "source": spec.name, "size": f.size, "version": f.version, "run_id": run_id, "loaded_at": now}
        for spec, files in ((SONG_SOURCE, song_files), (LOG_SOURCE, log_files))
        for f in files
    ]
    return pd.DataFrame(rows, columns=["url", "source", "size", "version", "run_id", "loaded_at"])


class _Run:
    """The state of one run, so each stage is a short method."""

    def __init__(self, cfg: Config, options: RunOptions, run_id: str):
        self.cfg = cfg
        self.options = options
        self.run_id = run_id
        self.dest: Destination = destination_for(cfg)
        self.summary = Summary(
            run_id=run_id, target=self.dest.describe(), mode="full refresh" if options.full_refresh else "incremental"
        )
        self.session = None
        self.ray_nodes: set[str] = set()
        if cfg.staging.path.startswith("s3://") or cfg.warehouse.target == "redshift":
            aws.configure_wrangler(cfg)
        if cfg.staging.path.startswith("s3://"):
            self.session = aws.session(cfg)

    def retry(self, step: str, fn: Callable[[], R]) -> R:
        return with_retries(step, fn, attempts=self.cfg.run.attempts, base_delay=self.cfg.run.retry_base_seconds)

    def list_source(
        self, url: str, spec: SourceSpec, ledger: dict[str, tuple[int, str]]
    ) -> tuple[Any, list[SourceFile]]:
        fs, files = self.retry(f"listing {url}", lambda: discover(url, self.cfg.storage_options()))
        chosen, skipped = select_files(files, ledger, self.options, windowed=spec is LOG_SOURCE)
        self.summary.files_skipped[spec.name] = skipped
        self.summary.files_read[spec.name] = len(chosen)
        log.info(
            "%s: %d files under %s, %d to read, %d already loaded", spec.name, len(files), url, len(chosen), skipped
        )
        return fs, chosen

    def count(self, source: str, records: int, rejects: list[Reject], bytes_read: int) -> None:
        s = self.summary
        s.records_read[source] = s.records_read.get(source, 0) + records
        s.records_rejected[source] = s.records_rejected.get(source, 0) + len(rejects)
        s.bytes_read += bytes_read
        if rejects:
            s.rejects_file = append_rejects(rejects, self.cfg.rejects.path, self.run_id)

    def count_extracted(self, x: Extracted) -> None:
        self.count(x.spec.name, x.records, x.rejects, x.bytes_read)

    def execute(self) -> Summary:
        cfg, s = self.cfg, self.summary
        with _timed(s, "prepare"):
            ensure_demo_data(cfg)
            ledger = {} if self.options.full_refresh else self.retry("reading the ledger", self.dest.loaded_files)
            song_fs, song_files = self.list_source(cfg.source.song_data, SONG_SOURCE, ledger)
            log_fs, log_files = self.list_source(cfg.source.log_data, LOG_SOURCE, ledger)
            stored = None if self.options.full_refresh else self.retry("reading songs", self.dest.stored_song_lookup)
        stager = staging.Stager(cfg.staging.path, self.run_id, self.session)

        # Songs first, in one batch: the catalogue is small and every log batch needs its lookup.
        with _timed(s, "extract"):
            song_x = self.read_songs(song_fs, song_files)
        self.count_extracted(song_x)
        with _timed(s, "transform"):
            lookup = T.song_lookup(song_x.frame)
            if stored is not None:
                lookup = T.combine_lookups(lookup, stored)
            dims = {"songs": T.songs(song_x.frame), "artists": T.artists(song_x.frame)}
        self.dest.preflight(dims)
        with _timed(s, "stage"):
            stager.add(dims)
        del song_x, dims

        if cfg.engine == "ray":
            self.process_logs_on_ray(log_files, lookup, stager)
        else:
            self.process_logs_locally(log_fs, log_files, lookup, stager)
        self.check_rejects()
        faults.checkpoint("extracted")
        with _timed(s, "stage"):
            stager.add({"_sparkify_loaded_files": ledger_frame(song_files, log_files, self.run_id, utcnow())})
            staged = stager.finish()
        faults.checkpoint("staged")
        before = memory.rss_mb()
        memory.release()
        log.debug("memory before the load: %.0f MB resident, %.0f MB after release", before, memory.rss_mb())
        with _timed(s, "load"):
            try:
                result = self.retry("loading", lambda: self.dest.load(staged, full_refresh=self.options.full_refresh))
            except BaseException as exc:
                exc.add_note(f"staged files kept for inspection in {staged.location}/")
                raise
        s.rows_merged = result.rows_merged
        s.rows_total = result.rows_total
        if not cfg.staging.keep:
            staging.remove(staged, self.session)
        s.status = "succeeded"
        return s

    def read_songs(self, song_fs: Any, song_files: list[SourceFile]) -> Extracted:
        if self.cfg.engine == "ray":
            from . import distributed

            distributed.init(self.cfg)
            song_x, nodes, tasks = distributed.extract_songs(self.cfg, song_files)
            self.ray_nodes |= nodes
            self.summary.ray_tasks[SONG_SOURCE.name] = tasks
            return song_x
        return self.retry(
            "reading song_data",
            lambda: extract(SONG_SOURCE, song_fs, song_files, concurrency=self.cfg.source.concurrency),
        )

    def process_logs_on_ray(self, log_files: list[SourceFile], lookup: pd.DataFrame, stager: staging.Stager) -> None:
        from . import distributed

        s = self.summary
        with _timed(s, "extract"):  # extraction, transforms and staging all run in the Ray tasks
            results = distributed.process_logs(self.cfg, self.run_id, log_files, lookup)
        s.engine = "ray"
        s.ray_tasks[LOG_SOURCE.name] = len(results)
        self.ray_nodes |= {r.node for r in results}
        s.ray_nodes_used = len(self.ray_nodes)
        for r in results:
            self.count(LOG_SOURCE.name, r.records, r.rejects, r.bytes_read)
            for name, path, rows in r.parts:
                stager.record(name, path, rows)

    def process_logs_locally(
        self, log_fs: Any, log_files: list[SourceFile], lookup: pd.DataFrame, stager: staging.Stager
    ) -> None:
        cfg, s = self.cfg, self.summary
        # Logs in bounded batches. A background thread fetches and parses the next batch (pyarrow releases
        # the GIL) while this thread transforms and stages the current one, which is mostly single-threaded
        # pandas: at 10M events that took the wall time from 39 s to 33-35 s on 2 cores. "extract" counts
        # only the time this thread waits for a parsed batch.
        batch_bytes = cfg.source.batch_mb << 20
        batches = (
            extract_segments(LOG_SOURCE, log_files, segments)
            for segments in read_batches(log_fs, log_files, batch_bytes, cfg.source.concurrency)
        )
        total = sum(f.size for f in log_files)
        with closing(prefetch(batches)) as parsed, Progress("log data", total=total, unit="B") as bar:
            for n in itertools.count(1):
                with _timed(s, "extract"):
                    log_x = next(parsed, None)
                if log_x is None:
                    break
                bar.update(log_x.bytes_read)
                self.count_extracted(log_x)
                with _timed(s, "transform"):
                    plays = T.songplays(log_x.frame, lookup)
                    frames = {"users": T.users(log_x.frame), "time": T.time(plays), "songplays": plays}
                del log_x
                self.dest.preflight(frames)
                with _timed(s, "stage"):
                    stager.add(frames)
                del frames, plays
                log.info("batch %d staged (%s records so far)", n, f"{s.records_read.get('log_data', 0):,}")

    def check_rejects(self) -> None:
        s = self.summary
        read = sum(s.records_read.values())
        rejected = sum(s.records_rejected.values())
        if read and rejected / read > self.cfg.rejects.max_fraction:
            raise TooManyRejects(
                f"{rejected} of {read} records rejected ({rejected / read:.2%}), over rejects.max_fraction "
                f"{self.cfg.rejects.max_fraction:.2%}; nothing was loaded. See {s.rejects_file}"
            )


def prefetch(items: Iterator[R], depth: int = 1) -> Generator[R, None, None]:
    """Produce the next items in a background thread while the caller works on the current one.

    If the caller stops early (an error, or it closes the generator), the thread stops after the item it is
    working on, so no batch stays pinned in memory by a thread blocked on a full queue.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:
            put(("error", exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def run(cfg: Config, options: RunOptions | None = None, run_id: str | None = None) -> Summary:
    """Run the pipeline once, holding the run lock. Raises on failure, with ``summary`` attached."""
    options = options or RunOptions()
    run_id = run_id or new_run_id()
    with single_flight(cfg.run.lock_path, run_id):
        r = _Run(cfg, options, run_id)
        started = utcnow()
        try:
            r.retry("creating the schema", r.dest.create_schema)
            abandoned = r.retry("recording the run", lambda: r.dest.start_run(run_id, started))
            if abandoned:
                log.warning(
                    "%d earlier run(s) had been killed mid-way; marked abandoned (their loads rolled back)", abandoned
                )
            summary = r.execute()
        except BaseException as exc:
            r.summary.status = "failed"
            r.summary.error = f"{type(exc).__name__}: {exc}"
            _record_end(r, started)
            exc.summary = r.summary  # type: ignore[attr-defined]
            raise
        _record_end(r, started)
        return summary


def _record_end(r: _Run, started: datetime) -> None:
    s = r.summary
    try:
        r.dest.end_run(
            r.run_id,
            s.status,
            utcnow(),
            sum(s.files_read.values()),
            sum(s.records_read.values()),
            sum(s.records_rejected.values()),
            s.rows_merged,
            s.error,
        )
    except Exception as exc:  # the warehouse may be what failed; the summary still reaches the log
        log.warning("could not record the end of run %s in the run history: %s", r.run_id, exc)


def history(cfg: Config, limit: int = 20) -> list[dict[str, Any]]:
    return destination_for(cfg).run_history(limit)
