"""What staging hands to the load: the run's Parquet parts per relation. Light on purpose (no pandas, no
pyarrow), so the load's module and the commands that only read the warehouse import it for nothing."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.schema import Table


@dataclass(frozen=True)
class StagedTable:
    table: Table
    files: list[str]
    rows: int
    # The folder holding every part (COPY loads a whole prefix at once).
    prefix: str = ""


@dataclass(frozen=True)
class Staged:
    """A run's staged relations as Parquet files, ready to bulk-load."""

    run_id: str
    location: str
    tables: dict[str, StagedTable]
