"""How much rejected input weighs against ``rejects.max_fraction``: in records, by one rule for every reject.

A rejected line weighs the records it held: one (a wrong type, a broken escape, a 50 MB ``artist_name``, however
long the line), or as many as the objects glued on it (a day whose line breaks were lost). A file rejected
whole (unreadable, not decompressible, not JSON) weighs the records its size would hold at the average size of
a good record of its source in this run, at least one: a lost day weighs like the day of events it held. An
empty file held no record and weighs nothing. A run's share is the weighed rejects over every good record read
plus them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .extract import Reject

# Bytes of JSON per record where a run read no good record of a source to measure it by (about a log event).
FALLBACK_RECORD_BYTES = 350


@dataclass
class RejectWeights:
    """One source's counts over a run, added batch by batch: what the weighing needs, without the rejects."""

    good_records: int = 0
    good_bytes: int = 0
    line_records: int = 0
    file_bytes: list[int] = field(default_factory=list)

    def add(self, records: int, bytes_read: int, rejects: list[Reject]) -> None:
        self.line_records += sum(r.records for r in rejects if r.line is not None)
        self.file_bytes += [r.size for r in rejects if r.line is None]
        self.good_records += records - len(rejects)
        self.good_bytes += max(0, bytes_read - sum(r.size for r in rejects))

    def record_bytes(self) -> float:
        return self.good_bytes / self.good_records if self.good_records else FALLBACK_RECORD_BYTES

    def weighed(self) -> tuple[float, float]:
        """(rejected, total), in records."""
        per = self.record_bytes()
        rejected = self.line_records + sum(max(1.0, size / per) for size in self.file_bytes if size)
        return rejected, self.good_records + rejected


def weigh_rejects(sources: Iterable[RejectWeights]) -> tuple[float, float]:
    """(rejected, total), in records, over every source of a run."""
    rejected = total = 0.0
    for w in sources:
        r, t = w.weighed()
        rejected += r
        total += t
    return rejected, total
