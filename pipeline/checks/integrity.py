"""The star's keys: primary keys unique and not null, every foreign key value present in its dimension.

Redshift does not enforce primary or foreign keys, so these checks are what keeps the star schema honest there.
"""

from __future__ import annotations

from pipeline.checks.base import Check, Target
from pipeline.core.schema import TABLES
from pipeline.core.sql import quote


def integrity_checks(target: Target) -> list[Check]:
    """Primary keys unique and not null; every foreign key value present in its dimension."""
    dialect, schema = target.dialect, target.schema
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
    return checks
