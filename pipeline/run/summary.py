"""A run's summary: what it read, rejected, held and wrote, and how long each stage took.

Printed as text for a person, as one JSON line for a log shipper (``run --json``), and rendered as Prometheus
metrics (``metrics.py``); attached to the exception of a run that failed, so its figures are never lost.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.extract.sources import SONG_SOURCE


@dataclass
class Summary:
    run_id: str
    target: str
    mode: str = "incremental"
    status: str = "running"
    files_read: dict[str, int] = field(default_factory=dict)
    files_skipped: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    # Bytes of source the rejected records held (a whole unreadable file: its size): what the threshold weighs.
    bytes_rejected: int = 0
    records_read: dict[str, int] = field(default_factory=dict)
    records_rejected: dict[str, int] = field(default_factory=dict)
    # Files that could not be read at all; left out of the ledger, so the next run tries them again.
    files_unread: list[str] = field(default_factory=list)
    # Files gone between the listing and the read: as if no longer listed (a loaded one keeps what it had).
    files_vanished: list[str] = field(default_factory=list)
    # Re-deliveries held back by the shrink guard (url, records, stored): they keep what they had.
    files_held: list[dict[str, Any]] = field(default_factory=list)
    # Rejects weighed in records against what was read (see ``weigh_rejects``): what the threshold applies to.
    rejected_ratio: float = 0.0
    # Where the read copy for analysts was published after the load (DuckDB), if it was.
    read_copy: str | None = None
    rejects_file: str | None = None
    rows_merged: dict[str, int] = field(default_factory=dict)
    rows_total: dict[str, int] = field(default_factory=dict)
    # Of all songplays in the warehouse after the run, those matched to a song.
    plays_matched: int = 0
    # Event text fields whose double encoding this run repaired (see repair.py).
    fields_repaired: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    engine: str = "local"
    # Processes that ran the batches side by side (1: this process alone).
    workers: int = 1
    # CPU seconds of the run's process and its workers (the work), and the seconds of its longest serial chain
    # (the span: the run's wall time less the batches' phase, plus the longest task): work / span is the most
    # the run could gain from more cores.
    work_seconds: float = 0.0
    span_seconds: float = 0.0
    ray_nodes_used: int = 0
    ray_tasks: dict[str, int] = field(default_factory=dict)
    # The checks the load ran: "audit" (every row of every table) or "night" (what this run wrote).
    checks: str = ""
    # Events and users whose rows were derived again from their kept records (see ``pipeline/reconcile/``).
    reconciled: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> str:
        """One line: the crontab appends one summary per night to a JSON Lines file for a log shipper."""
        return json.dumps(asdict(self), separators=(",", ":"))

    def to_text(self) -> str:
        total = sum(self.seconds.values())
        lines = [f"run {self.run_id} -> {self.target} ({self.mode}): {self.status}"]
        # Songs first, as the sources are documented, whichever was listed first.
        for src in sorted(self.files_read, key=lambda name: name != SONG_SOURCE.name):
            lines.append(
                f"  {src:10} {self.files_read[src]:>9,} files  {self.records_read.get(src, 0):>11,} records"
                f"  {self.records_rejected.get(src, 0):>7,} rejected"
                f"  ({self.files_skipped.get(src, 0):,} files already loaded, skipped)"
            )
        if self.rejects_file:
            lines.append(f"  rejected records kept in {self.rejects_file}")
        if self.files_vanished:
            lines.append(f"  {len(self.files_vanished):,} files gone since they were listed, left as they were")
        for h in self.files_held:
            lines.append(
                f"  HELD: {h['url']} has {h['records']:,} {h['unit']} against the {h['stored']:,} loaded from the "
                "version it replaces; the loaded version stays"
            )
        if self.files_held:
            lines.append(
                "  to load a smaller re-delivery as it is: python -m pipeline run --accept-shrunk URL (once per file)"
            )
        if self.rows_merged:
            lines.append("  rows written (staged and merged) / rows in table after the run:")
            for t, n in self.rows_merged.items():
                if not t.startswith("_"):
                    lines.append(f"    {t:12} {n:>11,} / {self.rows_total.get(t, 0):>11,}")
        plays = self.rows_total.get("songplays", 0)
        if plays:
            lines.append(
                f"  songplays matched to a song: {self.plays_matched:,} of {plays:,} "
                f"({self.plays_matched / plays:.2%}); text fields repaired this run: {self.fields_repaired:,}"
            )
        r = self.reconciled
        if r.get("contested_events") or r.get("users_whole") or r.get("users_windows"):
            lines.append(
                f"  derived again from kept records: {r.get('contested_events', 0):,} contested events; "
                f"{r.get('users_whole', 0):,} users whole, {r.get('users_windows', 0):,} where their events interleave"
            )
        lines.append(
            "  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items()) + f"; total {total:.2f}"
        )
        if self.checks:
            lines.append(
                "  checks: every row of every table (the audit)"
                if self.checks == "audit"
                else "  checks: the rows this run wrote (the whole warehouse at the next audit)"
            )
        if self.work_seconds:
            lines.append(
                f"  work {self.work_seconds:.2f} CPU-s, span {self.span_seconds:.2f} s, {self.workers} worker(s)"
            )
        if self.peak_memory_mb:
            lines.append(f"  peak memory: {max(self.peak_memory_mb.values()):,.0f} MB")
        if self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)
