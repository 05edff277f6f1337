"""Which files a run reads: new or changed since the ledger, all of them on a full refresh, within a window of
days for a backfill; and the ledger rows of the files it loaded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from pipeline.core.schema import LOADED_FILES
from pipeline.extract.discover import SourceFile
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE

_DATE_IN_PATH = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


@dataclass(frozen=True)
class RunOptions:
    full_refresh: bool = False
    # Re-delivered files (URLs) whose shrink this run accepts: they replace what they had, however small.
    accept_shrunk: frozenset[str] = frozenset()
    # Inclusive window on the date in each log file's name (YYYY-MM-DD), for backfills.
    since: date | None = None
    until: date | None = None
    # Check every row of every table in this run's load, whenever the last audit was.
    audit: bool = False


def file_date(path: str) -> date | None:
    m = _DATE_IN_PATH.search(path.rsplit("/", 1)[-1])
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def select_files(
    files: list[SourceFile], ledger: dict[str, tuple[str, int, str]], options: RunOptions, windowed: bool
) -> tuple[list[SourceFile], int]:
    """The files this run reads: new or changed since the ledger (all on a full refresh), in the window."""
    chosen: list[SourceFile] = []
    skipped = 0
    for f in files:
        if windowed and (options.since or options.until):
            d = file_date(f.path)
            if d is None or (options.since and d < options.since) or (options.until and d > options.until):
                continue
        entry = ledger.get(f.url)
        if not options.full_refresh and entry is not None and entry[1:] == (f.size, f.version):
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
    return pd.DataFrame(rows, columns=LOADED_FILES.column_names)
