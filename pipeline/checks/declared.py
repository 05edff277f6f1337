"""Data-quality checks, derived from the schema and run as SQL in the warehouse.

Redshift does not enforce primary or foreign keys, so these checks are what keeps the star schema
honest there. During a run they execute inside the load transaction, before COMMIT: a failed check
rolls the load back and the warehouse stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.errors import CheckFailed
from pipeline.core.schema import BY_NAME, TABLES
from pipeline.core.sql import Dialect, quote

__all__ = ["Check", "CheckFailed", "CheckResult", "integrity_checks", "run_checks"]


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
            # An outer join kept where nothing matched, not NOT EXISTS: the same count (a parent's repeated or
            # null keys change nothing), and DuckDB plans it as a plain anti-join, several times faster.
            checks.append(
                Check(
                    f"{table.name}.{fk.column}_in_{fk.ref_table}",
                    f"SELECT COUNT(*) FROM {t} c LEFT JOIN {parent} p ON p.{ref} = c.{col} "
                    f"WHERE c.{col} IS NOT NULL AND p.{ref} IS NULL",
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
    return checks + level_history_checks(dialect, schema)


def level_history_checks(dialect: Dialect, schema: str) -> list[Check]:
    """``user_levels`` is a history: each user's periods follow one another with no gap or overlap, each
    changes the level, and exactly one is current, at the level ``users`` holds."""
    levels, users = dialect.qualified(schema, "user_levels"), dialect.qualified(schema, "users")
    ordered = (
        'SELECT "user_id", "level", "valid_from", "valid_to", '
        'LEAD("valid_from") OVER (PARTITION BY "user_id" ORDER BY "valid_from") AS next_from, '
        'LAG("level") OVER (PARTITION BY "user_id" ORDER BY "valid_from") AS prev_level '
        f"FROM {levels}"
    )
    return [
        Check(
            "user_levels.periods_tile",
            f'SELECT COUNT(*) FROM ({ordered}) p WHERE (p."valid_to" IS NULL AND p.next_from IS NOT NULL) '
            'OR (p."valid_to" IS NOT NULL AND p.next_from IS NULL) '
            'OR p."valid_to" <> p.next_from',
            0,
            # Ordered by valid_from, a period ending where the next starts also ends after it starts.
            "periods that overlap the next one or leave a gap before it",
        ),
        Check(
            "user_levels.each_period_changes_level",
            f'SELECT COUNT(*) FROM ({ordered}) p WHERE p.prev_level = p."level"',
            0,
            "periods at the same level as the period before (they should be one)",
        ),
        Check(
            "user_levels.one_current_per_user",
            f'SELECT COUNT(*) FROM {users} u LEFT JOIN (SELECT "user_id", COUNT(*) AS n FROM {levels} '
            'WHERE "valid_to" IS NULL GROUP BY "user_id") c ON c."user_id" = u."user_id" WHERE COALESCE(c.n, 0) <> 1',
            0,
            "users without exactly one current level period",
        ),
        Check(
            "user_levels.current_is_users_level",
            f'SELECT COUNT(*) FROM {users} u JOIN {levels} l ON l."user_id" = u."user_id" '
            'AND l."valid_to" IS NULL WHERE l."level" <> u."level"',
            0,
            "users whose current period's level is not users.level",
        ),
    ]


def reconciliation_check(dialect: Dialect, schema: str, staged: str | None, derived: str, contested: str) -> Check:
    """Every play this run wrote is in the warehouse: the staged ones that were not contested, and those
    derived again for contested events."""
    t = dialect.qualified(schema, BY_NAME["songplays"].name)
    fresh = (
        f'SELECT "songplay_id" FROM {staged} WHERE "songplay_id" NOT IN (SELECT "songplay_id" FROM {contested}) '
        "UNION ALL "
        if staged
        else ""
    )
    # One anti-join, written as an outer join like the foreign keys' (cheaper than counting both sides of a UNION).
    return Check(
        "songplays.reconciles_with_events",
        f'SELECT COUNT(*) FROM ({fresh}SELECT "songplay_id" FROM {derived}) e '
        f'LEFT JOIN {t} s ON s."songplay_id" = e."songplay_id" WHERE s."songplay_id" IS NULL',
        0,
        "plays of this run's NextSong events (with a userId) missing from the warehouse",
    )


def run_checks(checks: list[Check], row: Callable[[str], Sequence[Any]]) -> list[CheckResult]:
    """Every check at once, as the columns of one statement: one round trip to Redshift instead of one per
    check, and one plan in DuckDB instead of one per statement. ``row`` runs a query and returns its one row."""
    if not checks:
        return []
    values = row("SELECT " + ", ".join(f"({c.sql}) AS {quote(f'check_{n}')}" for n, c in enumerate(checks)))
    return [CheckResult(c, int(v)) for c, v in zip(checks, values, strict=True)]
