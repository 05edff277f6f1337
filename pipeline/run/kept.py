"""A full refresh's log files that keep their rows from their kept records (gone from the source, or not taken
as they stand this run), through the same batches as the source's."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pandas as pd

from pipeline.core.schema import EVENT_RECORDS
from pipeline.extract.discover import SourceFile
from pipeline.extract.records import Extracted
from pipeline.extract.sources import LOG_SOURCE
from pipeline.load import stage as staging
from pipeline.run.context import RunContext
from pipeline.run.engine import BatchOutcome, process_batch
from pipeline.transform import frames


def kept_log_batches(
    ctx: RunContext, gone: list[str], lookup: pd.DataFrame, stager: staging.Stager
) -> Iterator[BatchOutcome]:
    """A full refresh's log files that have left the source, or that this run kept as they were (unreadable,
    gone since the listing, held): their kept records, through the same batches. A generator: it reads which
    files were kept when it is first asked, after the source's batches."""
    kept = ctx.kept()
    urls = [*gone, *sorted(u for u in kept if u in ctx.ledger and ctx.ledger[u][0] == LOG_SOURCE.name)]
    budget = ctx.cfg.source.batch_bytes
    group: list[str] = []
    sizes = 0
    batches: list[list[str]] = []
    for url in urls:
        group.append(url)
        sizes += ctx.ledger[url][1]
        if sizes >= budget:
            batches.append(group)
            group, sizes = [], 0
    if group:
        batches.append(group)
    for n, urls_of_batch in enumerate(batches):
        records = ctx.retry("reading kept records", partial(ctx.dest.stored_records, EVENT_RECORDS, urls_of_batch))
        frame, files = frames.records_frame(records, LOG_SOURCE)
        x = Extracted(LOG_SOURCE, [SourceFile(path=u, url=u, size=0, version="") for u in files], frame)
        yield process_batch(x, lookup, stager, f"kept-{n:05d}", ctx.timed)
