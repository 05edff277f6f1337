"""The run's figures for monitoring: Prometheus text format, for node_exporter's textfile collector.

Cron says nothing when a job silently stops running; a metric of the last success's time does. The file is
written after every run that started (succeeded or failed), atomically (a temporary file renamed over it),
so the collector never reads half a file. ``sparkify_last_success_timestamp_seconds`` survives failed runs:
it is carried over from the previous file.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.run.summary import Summary

PREFIX = "sparkify"
_SUCCESS = re.compile(rf"^{PREFIX}_last_success_timestamp_seconds (\S+)$", re.MULTILINE)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """Full precision (a Unix time needs 13 digits), integers without a fraction."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _metric(name: str, kind: str, doc: str, samples: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    lines = [f"# HELP {PREFIX}_{name} {doc}", f"# TYPE {PREFIX}_{name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{PREFIX}_{name}{'{' + inner + '}' if inner else ''} {_number(value)}")
    return lines


def previous_success(path: Path) -> float | None:
    try:
        m = _SUCCESS.search(path.read_text())
        return float(m.group(1)) if m else None
    except (OSError, ValueError):  # no file yet, or one damaged by hand: start afresh
        return None


Samples = list[tuple[dict[str, str], float]]


def _gauges(summary: Summary, ended_at: float, last_success: float | None) -> list[tuple[str, str, Samples | None]]:
    """Every gauge of a run: name, help text, samples; None leaves the gauge out (absent beats a false 0: a failed
    run knows no match count)."""
    s, ok = summary, summary.status == "succeeded"
    plays = s.rows_total.get("songplays", 0)
    published = 1.0 if s.read_copy or s.target.startswith("redshift") else 0.0
    return [
        ("last_run_timestamp_seconds", "When the last run ended (Unix time).", [({}, ended_at)]),
        ("last_run_success", "1 if the last run succeeded, 0 if it failed.", [({}, 1.0 if ok else 0.0)]),
        (
            "last_success_timestamp_seconds",
            "When the last successful run ended (Unix time); alert when it is more than 26 hours old.",
            [({}, last_success)] if last_success is not None else None,
        ),
        (
            "last_run_stage_seconds",
            "Seconds the last run spent in each stage.",
            [({"stage": k}, v) for k, v in s.seconds.items()],
        ),
        (
            "last_run_records_read",
            "Records the last run read, per source.",
            [({"source": k}, float(v)) for k, v in s.records_read.items()],
        ),
        (
            "last_run_records_rejected",
            "Records the last run rejected, per source.",
            [({"source": k}, float(v)) for k, v in s.records_rejected.items()],
        ),
        (
            "last_run_bytes_rejected_ratio",
            "Share of the bytes read that the last run rejected.",
            [({}, s.bytes_rejected / s.bytes_read if s.bytes_read else 0.0)],
        ),
        (
            "last_run_rejected_ratio",
            "Rejected records, weighed in records, over those read by the last run (rejects.max_fraction applies).",
            [({}, s.rejected_ratio)],
        ),
        (
            "last_run_files_held",
            "Re-delivered files the last run held back (they would lose most of what they replace); alert when > 0.",
            [({}, float(len(s.files_held)))],
        ),
        (
            "last_run_read_copy_published",
            "1 if the last successful run published the read copy analysts query (DuckDB), 0 if that failed.",
            [({}, published)] if ok else None,
        ),
        (
            "last_run_files_vanished",
            "Files gone between the last run's listing and its read (left as they were).",
            [({}, float(len(s.files_vanished)))],
        ),
        (
            "last_run_fields_repaired",
            "Event text fields whose double encoding the last run repaired.",
            [({}, float(s.fields_repaired))],
        ),
        (
            "songplays_matched_ratio",
            "Share of all songplays matched to a song of the catalogue, after the last successful run.",
            [({}, s.plays_matched / plays)] if ok and plays else None,
        ),
        (
            "table_rows",
            "Rows in each table after the last successful run.",
            [({"table": k}, float(v)) for k, v in s.rows_total.items()],
        ),
    ]


def render(summary: Summary, ended_at: float, last_success: float | None) -> str:
    lines: list[str] = []
    for name, doc, samples in _gauges(summary, ended_at, last_success):
        if samples is not None:
            lines += _metric(name, "gauge", doc, samples)
    return "\n".join(lines) + "\n"


def write(path: str, summary: Summary, ended_at: float) -> None:
    """Write the run's metrics to ``path`` atomically; a failed run keeps the last success's time."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    last_success = ended_at if summary.status == "succeeded" else previous_success(target)
    if not summary.rows_total and summary.status != "succeeded":
        # A failed run changed no table: keep the row counts the previous file reported.
        summary = _with_previous_rows(summary, target)
    body = render(summary, ended_at, last_success)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not publish a file whose bytes are not yet on disk
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_ROWS = re.compile(rf'^{PREFIX}_table_rows{{table="([^"]+)"}} (\S+)$', re.MULTILINE)


def _with_previous_rows(summary: Summary, path: Path) -> Summary:
    from dataclasses import replace

    try:
        rows = {t: int(float(v)) for t, v in _ROWS.findall(path.read_text())}
    except (OSError, ValueError):
        return summary
    return replace(summary, rows_total=rows)
