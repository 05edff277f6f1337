"""The shrink guard: a re-delivered file that would lose most of what it replaces is held back, not loaded.

"Latest version wins" is the rule for a re-delivered file, but an interrupted re-upload (a day cut short, an
empty file) is also a new version. A re-delivery whose good records fall below ``1 - rejects.max_shrink`` of
the records loaded from the version it replaces is held: its stored records, plays and ledger row stay as they
are, the rest of the night loads, and the run ends with exit 6 until an operator accepts the smaller file
(``run --accept-shrunk URL``) or a complete one arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from pipeline.extract.discover import SourceFile
from pipeline.extract.records import FILE_COL, Extracted


@dataclass(frozen=True)
class Held:
    """A re-delivered file held back: its records now, and those loaded from the version it would replace (or,
    for a file too large for one batch, its bytes against those of the loaded version)."""

    url: str
    records: int
    stored: int
    unit: str = "records"


def held_by_size(
    files: list[SourceFile], ledger: Mapping[str, tuple[str, int, str]], guard: ShrinkGuard | None, batch_bytes: int
) -> tuple[list[SourceFile], list[Held]]:
    """Re-delivered files larger than a batch are read in pieces, so no batch can count their records: those
    whose size fell below ``1 - max_shrink`` of the loaded version's are held before anything is read."""
    if guard is None:
        return files, []
    keep: list[SourceFile] = []
    held: list[Held] = []
    for f in files:
        entry = ledger.get(f.url)
        if entry is None or f.weight <= batch_bytes or f.url in guard.accepted:
            keep.append(f)
        elif guard.shrinks_too_much(entry[1], f.size):
            held.append(Held(f.url, f.size, entry[1], unit="bytes"))
        else:
            keep.append(f)
    return keep, held


@dataclass(frozen=True)
class ShrinkGuard:
    """What a batch needs to decide which of its re-delivered files to hold (picklable: Ray tasks take it).

    ``stored``: url -> records kept from its loaded version, for the re-delivered files of the run only. Only
    files a batch holds whole are weighed: one larger than a batch comes in pieces, none of which says how many
    records the file holds.
    """

    stored: Mapping[str, int]
    max_shrink: float
    accepted: frozenset[str] = frozenset()

    def shrinks_too_much(self, stored: int, records: int) -> bool:
        return stored > 0 and records < stored * (1.0 - self.max_shrink)

    def hold(self, x: Extracted) -> tuple[Extracted, list[Held]]:
        """``x`` without the rows and rejects of its held files (marked in ``held``), and what was held."""
        weighed = [
            i
            for i in sorted(x.whole - x.unread - x.vanished)
            if x.files[i].url in self.stored and x.files[i].url not in self.accepted
        ]
        if not weighed:  # nearly every batch: no re-delivered file in it
            return x, []
        counts = np.bincount(x.frame[FILE_COL].to_numpy(), minlength=len(x.files))
        held: list[Held] = []
        indexes: set[int] = set()
        for i in weighed:
            url = x.files[i].url
            if self.shrinks_too_much(self.stored[url], int(counts[i])):
                held.append(Held(url, int(counts[i]), self.stored[url]))
                indexes.add(i)
        if not indexes:
            return x, []
        keep = ~np.isin(x.frame[FILE_COL].to_numpy(), list(indexes))
        urls = {x.files[i].url for i in indexes}
        frame = x.frame.loc[keep].reset_index(drop=True)
        rejects = [r for r in x.rejects if r.file not in urls]
        # Nothing of a held file is read, as far as the rejects' weighing is concerned.
        read = x.bytes_read - sum(x.files[i].weight for i in indexes)
        return replace(x, frame=frame, rejects=rejects, held=x.held | indexes, bytes_read=max(0, read)), held
