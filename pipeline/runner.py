"""One pipeline run: discover -> extract -> transform -> stage -> load (with checks), timed per stage.

This is the only module that sequences the stages; each stage is a plain function elsewhere, so a
notebook can call any of them alone.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import aws, memory
from . import stage as staging
from .config import Config, is_url
from .discover import discover
from .extract import Extracted, Reject, extract
from .generate import generate, is_empty
from .load import destination_for
from .sources import LOG_SOURCE, SONG_SOURCE
from .transform import build_star

log = logging.getLogger(__name__)


class TooManyRejects(RuntimeError):
    pass


@dataclass
class Summary:
    run_id: str
    target: str
    status: str = "running"
    files_read: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    records_read: dict[str, int] = field(default_factory=dict)
    records_rejected: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    rows_merged: dict[str, int] = field(default_factory=dict)
    rows_total: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_text(self) -> str:
        total = sum(self.seconds.values())
        lines = [f"run {self.run_id} -> {self.target}: {self.status}"]
        for src in self.files_read:
            lines.append(
                f"  {src:10} {self.files_read[src]:>9,} files  {self.records_read.get(src, 0):>11,} records"
                f"  {self.records_rejected.get(src, 0):>7,} rejected"
            )
        if self.rejects_file:
            lines.append(f"  rejected records kept in {self.rejects_file}")
        if self.rows_merged:
            lines.append("  rows written (staged and merged) / rows in table after the run:")
            for t, n in self.rows_merged.items():
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


@contextmanager
def _timed(summary: Summary, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    memory.reset_peak()
    log.info("%s ...", stage)
    try:
        yield
    finally:
        summary.seconds[stage] = round(time.perf_counter() - start, 3)
        summary.peak_memory_mb[stage] = round(memory.peak_mb(), 1)
        log.info(
            "%s done in %.2f s (peak memory %.0f MB)",
            stage,
            summary.seconds[stage],
            summary.peak_memory_mb[stage],
        )


def ensure_demo_data(cfg: Config) -> bool:
    """Fill empty local source folders with the synthetic demo dataset, so a fresh clone just runs."""
    if not cfg.demo.generate_if_empty or is_url(cfg.source.song_data) or is_url(cfg.source.log_data):
        return False
    songs, logs = Path(cfg.source.song_data), Path(cfg.source.log_data)
    if not (is_empty(songs) and is_empty(logs)):
        return False
    log.info(
        "source folders are empty: generating the demo dataset (%d songs, %d events)",
        cfg.demo.songs,
        cfg.demo.events,
    )
    generate(songs, logs, songs=cfg.demo.songs, events=cfg.demo.events, seed=cfg.demo.seed)
    return True


def write_rejects(rejects: list[Reject], root: str, run_id: str) -> str | None:
    """Keep every rejected record, with where it came from and why, as JSON lines."""
    if not rejects:
        return None
    if is_url(root):
        import fsspec

        path = f"{root.rstrip('/')}/{run_id}.jsonl"
        with fsspec.open(path, "wb") as fh:
            for r in rejects:
                fh.write((json.dumps(asdict(r), ensure_ascii=False) + "\n").encode())
        return path
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, f"{run_id}.jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        for r in rejects:
            fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    return path


def _extract_source(cfg: Config, url: str, spec: Any) -> Extracted:
    fs, files = discover(url, cfg.storage_options())
    log.info("%s: %d files under %s", spec.name, len(files), url)
    return extract(spec, fs, files, concurrency=cfg.source.concurrency)


def run(cfg: Config, run_id: str | None = None) -> Summary:
    """Run the whole pipeline once. Raises on failure, with ``summary`` attached to the exception."""
    run_id = run_id or new_run_id()
    dest = destination_for(cfg)
    summary = Summary(run_id=run_id, target=dest.describe())
    session = None
    if cfg.staging.path.startswith("s3://"):
        aws.configure_wrangler(cfg)
        session = aws.session(cfg)
    try:
        with _timed(summary, "prepare"):
            ensure_demo_data(cfg)
        with _timed(summary, "extract"), ThreadPoolExecutor(max_workers=2) as pool:
            # Songs and logs are independent: fetching one overlaps parsing the other.
            songs_f = pool.submit(_extract_source, cfg, cfg.source.song_data, SONG_SOURCE)
            logs_f = pool.submit(_extract_source, cfg, cfg.source.log_data, LOG_SOURCE)
            song_x, log_x = songs_f.result(), logs_f.result()
        for x in (song_x, log_x):
            summary.files_read[x.spec.name] = len(x.files)
            summary.records_read[x.spec.name] = x.records
            summary.records_rejected[x.spec.name] = len(x.rejects)
            summary.bytes_read += x.bytes_read
        rejects = song_x.rejects + log_x.rejects
        summary.rejects_file = write_rejects(rejects, cfg.rejects.path, run_id)
        read = song_x.records + log_x.records
        if read and len(rejects) / read > cfg.rejects.max_fraction:
            raise TooManyRejects(
                f"{len(rejects)} of {read} records rejected ({len(rejects) / read:.2%}), over "
                f"rejects.max_fraction {cfg.rejects.max_fraction:.2%}; nothing was loaded. "
                f"See {summary.rejects_file}"
            )
        with _timed(summary, "transform"):
            star = build_star(song_x.frame, log_x.frame)
            del song_x, log_x
        dest.preflight(star.frames())
        with _timed(summary, "stage"):
            staged = staging.stage(star.frames(), cfg.staging.path, run_id, session)
            expected = len(star.songplays)
            del star
        with _timed(summary, "load"):
            try:
                result = dest.load(staged, expected_songplays=expected)
            except BaseException as exc:
                exc.add_note(f"staged files kept for inspection in {staged.location}")
                raise
        summary.rows_merged = result.rows_merged
        summary.rows_total = result.rows_total
        if not cfg.staging.keep:
            staging.remove(staged, session)
        summary.status = "succeeded"
        return summary
    except BaseException as exc:
        summary.status = "failed"
        summary.error = f"{type(exc).__name__}: {exc}"
        exc.summary = summary  # type: ignore[attr-defined]
        raise
