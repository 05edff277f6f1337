"""Data-quality checks, derived from the schema and run as SQL in the warehouse.

Redshift does not enforce primary or foreign keys, so these checks are what keeps the star schema
honest there. During a run they execute inside the load transaction, before COMMIT: a failed check
rolls the load back and the warehouse stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .schema import BY_NAME, TABLES
from .sql import Dialect, quote


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


class CheckFailed(RuntimeError):
    def __init__(self, failures: list[CheckResult]):
        self.failures = failures
        super().__init__("data-quality checks failed:\n" + "\n".join("  " + f.describe() for f in failures))


def integrity_checks(dialect: Dialect, schema: str) -> list[Check]:
    """Primary keys unique and not null; every foreign key value present in its dimension."""
    checks: list[Check] = []
    for table in TABLES:
        t = dialect.qualified(schema, table.name)
        checks.append(
            Check(
                f"{table.name}.primary_key_unique",
                dialect.repeated_keys(table, t),
                0,
                f"rows of {table.name} repeating another row's key",
            )
        )
        null_keys = " OR ".join(f"{quote(k)} IS NULL" for k in table.primary_key)
        checks.append(
            Check(
                f"{table.name}.primary_key_not_null",
                f"SELECT COUNT(*) FROM {t} WHERE {null_keys}",
                0,
                f"rows of {table.name} with a null key",
            )
        )
        for fk in table.foreign_keys:
            parent = dialect.qualified(schema, fk.ref_table)
            col, ref = quote(fk.column), quote(fk.ref_column)
            checks.append(
                Check(
                    f"{table.name}.{fk.column}_in_{fk.ref_table}",
                    f"SELECT COUNT(*) FROM {t} c WHERE c.{col} IS NOT NULL "
                    f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{ref} = c.{col})",
                    0,
                    f"{table.name}.{fk.column} values missing from {fk.ref_table}.{fk.ref_column}",
                )
            )
            if not fk.nullable:
                checks.append(
                    Check(
                        f"{table.name}.{fk.column}_not_null",
                        f"SELECT COUNT(*) FROM {t} WHERE {col} IS NULL",
                        0,
                        f"rows of {table.name} with no {fk.column}",
                    )
                )
    return checks


def reconciliation_check(dialect: Dialect, schema: str, staged: str | None, derived: str, contested: str) -> Check:
    """Every play this run wrote is in the warehouse: the staged ones that were not contested, and those
    derived again for contested events."""
    t = dialect.qualified(schema, BY_NAME["songplays"].name)
    fresh = (
        f'SELECT "songplay_id" FROM {staged} WHERE "songplay_id" NOT IN (SELECT "songplay_id" FROM {contested}) UNION '
        if staged
        else ""
    )
    expected = f'({fresh}SELECT "songplay_id" FROM {derived})'
    return Check(
        "songplays.reconciles_with_events",
        f'SELECT (SELECT COUNT(*) FROM {expected} e) - (SELECT COUNT(*) FROM {t} s WHERE s."songplay_id" IN '
        f'(SELECT "songplay_id" FROM {expected} e))',
        0,
        "plays of this run's NextSong events (with a userId) missing from the warehouse",
    )


def run_checks(checks: list[Check], scalar: Callable[[str], int]) -> list[CheckResult]:
    return [CheckResult(c, int(scalar(c.sql))) for c in checks]
