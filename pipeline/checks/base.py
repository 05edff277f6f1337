"""A check is one SQL count that must equal what is expected; all of a run's checks are read in one statement."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.sql import Dialect, quote


@dataclass(frozen=True)
class Written:
    """Rows a load wrote into a table: a relation (a quoted name, or a parenthesised query) and the table's
    columns it holds (a rematch writes only a play's song and artist)."""

    relation: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    """What one load changed, so its checks can be confined to it: per table, the rows it wrote, and relations of
    the keys it deleted (some of them written again)."""

    written: Mapping[str, Sequence[Written]] = field(default_factory=dict)
    deleted: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def written_with(self, table: str, *columns: str) -> list[str]:
        """The relations written into ``table`` that hold ``columns``."""
        return [w.relation for w in self.written.get(table, ()) if set(columns) <= set(w.columns)]


@dataclass(frozen=True)
class Target:
    """Where checks run: the warehouse schema, and during a load the run's work relations (name -> relation),
    which checks of the run itself read. None when checking what is committed.

    ``scope``: a night's load confines the checks of what it wrote to it (the rows it wrote, and what refers to
    keys it removed); None checks every row (the audit, ``check``, a full refresh)."""

    dialect: Dialect
    schema: str
    relations: Mapping[str, str] | None = None
    scope: Scope | None = None


@dataclass(frozen=True)
class Check:
    name: str
    sql: str
    # The query returns one integer; the check passes when it equals this.
    expected: int
    explain: str


@dataclass(frozen=True)
class CheckResult:
    check: Check
    actual: int

    @property
    def ok(self) -> bool:
        return self.actual == self.check.expected

    def describe(self) -> str:
        status = "ok" if self.ok else "FAILED"
        return f"{status:6} {self.check.name}: {self.actual} (expected {self.check.expected}) - {self.check.explain}"


def run_checks(checks: list[Check], row: Callable[[str], Sequence[Any]]) -> list[CheckResult]:
    """Every check at once, as the columns of one statement: one round trip to Redshift instead of one per
    check, and one plan in DuckDB instead of one per statement. ``row`` runs a query and returns its one row."""
    if not checks:
        return []
    values = row("SELECT " + ", ".join(f"({c.sql}) AS {quote(f'check_{n}')}" for n, c in enumerate(checks)))
    return [CheckResult(c, int(v)) for c, v in zip(checks, values, strict=True)]
