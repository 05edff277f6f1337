"""What a load hands to reconciliation and gets back: the workspace inside its transaction, the fixes, the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.checks.base import CheckResult
from pipeline.core.schema import (
    Table,
)
from pipeline.core.sql import Dialect, quote
from pipeline.load.staged import Staged

if TYPE_CHECKING:
    import pandas as pd

from pipeline.load.session import Session

# How a destination makes a frame a temporary relation: (session, table, frame, name, staging location).
PutFrame = Callable[[Session, Table, "pd.DataFrame", str, str], None]


@dataclass
class Fixes:
    """Rows a load writes beyond the staged ones, decided inside the load from what the warehouse holds.

    ``users``/``user_levels`` replace every row of the users in ``user_keys``; ``songplays`` replace the plays
    in ``songplay_keys`` (contested events, derived again from all their records).
    """

    users: pd.DataFrame
    user_keys: pd.DataFrame
    user_levels: pd.DataFrame
    songplays: pd.DataFrame
    songplay_keys: pd.DataFrame
    time: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadResult:
    rows_merged: dict[str, int] = field(default_factory=dict)
    rows_total: dict[str, int] = field(default_factory=dict)
    # Songplays (the whole table, after the run) matched to a song.
    plays_matched: int = 0
    checks: list[CheckResult] = field(default_factory=list)
    # Whether the checks read every row (the audit), not only what this load wrote.
    audited: bool = False
    stats: dict[str, int] = field(default_factory=dict)


class Workspace:
    """What reconciliation sees inside the load transaction: the staged relations, queries, and a way to put
    a frame beside them. Everything it reads is as of this transaction; nothing it puts outlives it."""

    def __init__(
        self,
        put_frame: PutFrame,
        dialect: Dialect,
        schema: str,
        session: Session,
        raw: Session,
        staged: Staged,
        relations: dict[str, str],
    ):
        self.put_frame = put_frame
        self.session = session
        self.raw = raw
        self.staged_at = staged.location
        self.relations = relations
        self.dialect = dialect
        self.schema = schema

    def relation(self, name: str) -> str:
        """The quoted name of a staged relation (``"stg_<name>"``)."""
        return self.relations[name]

    def frame(self, sql: str) -> pd.DataFrame:
        return self.session.frame(sql)

    def put(self, table: Table, frame: pd.DataFrame, name: str) -> str:
        """Make ``frame`` (typed as ``table``) a temporary relation named ``name``; returns its quoted name."""
        self.put_frame(self.raw, table, frame, name, self.staged_at)
        self.relations[name] = quote(name)
        return quote(name)


Reconcile = Callable[[Workspace], Fixes]


def staging_table(name: str) -> str:
    return f"stg_{name}"
