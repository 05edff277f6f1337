"""How much rejected input weighs against ``rejects.max_fraction``: in records, by one rule for every reject.

A rejected line that is one well-formed JSON object (it failed a type or a check: a string where a number
belongs, a 50 MB ``artist_name``) weighs one record, however long. Bytes that are not one record (a file that
cannot be read or decompressed, a broken line, a day whose line breaks were lost) weigh the records their size
would hold at the average size of a good record of their source in this run, at least one: a lost day weighs
like the day of events it held, a broken line like one event. An empty file held no record and weighs nothing.
A run's share is the weighed rejects over every good record read plus them.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from pipeline.core.config import is_url
from pipeline.extract.records import Reject

# Bytes of JSON per record where a run read no good record of a source to measure it by (about a log event).
FALLBACK_RECORD_BYTES = 350


@dataclass
class RejectWeights:
    """One source's counts over a run, added batch by batch: what the weighing needs, without the rejects."""

    good_records: int = 0
    good_bytes: int = 0
    records: int = 0
    unparsed_bytes: list[int] = field(default_factory=list)

    def add(self, records: int, bytes_read: int, rejects: list[Reject]) -> None:
        self.records += sum(r.records for r in rejects)
        self.unparsed_bytes += [r.size for r in rejects if not r.records]
        self.good_records += records - len(rejects)
        self.good_bytes += max(0, bytes_read - sum(r.size for r in rejects))

    def record_bytes(self) -> float:
        return self.good_bytes / self.good_records if self.good_records else FALLBACK_RECORD_BYTES

    def weighed(self) -> tuple[float, float]:
        """(rejected, total), in records."""
        per = self.record_bytes()
        rejected = self.records + sum(max(1.0, size / per) for size in self.unparsed_bytes if size)
        return rejected, self.good_records + rejected


def weigh_rejects(sources: Iterable[RejectWeights]) -> tuple[float, float]:
    """(rejected, total), in records, over every source of a run."""
    rejected = total = 0.0
    for w in sources:
        r, t = w.weighed()
        rejected += r
        total += t
    return rejected, total


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
