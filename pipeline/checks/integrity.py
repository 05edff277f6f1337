"""The star's keys: primary keys unique and not null, every foreign key value present in its dimension.

Redshift does not enforce primary or foreign keys, so these checks are what keeps the star schema honest there.

Confined to a night (``Target.scope``), each check reads what the load changed and the rows that share its keys,
not the history behind them: a night costs what the night brings. What no night touched is the audit's to check
(``run.audit_days``; docs/operations.md).
"""

from __future__ import annotations

from pipeline.checks.base import Check, Scope, Target
from pipeline.core.schema import TABLES, ForeignKey, Table
from pipeline.core.sql import column_list, quote


def integrity_checks(target: Target) -> list[Check]:
    """Primary keys unique and not null; every foreign key value present in its dimension."""
    checks: list[Check] = []
    for table in TABLES:
        checks += _primary_key(target, table)
        for fk in table.foreign_keys:
            checks += _foreign_key(target, table, fk)
    return checks


def _values(relations: list[str], columns: tuple[str, ...]) -> str:
    """``columns`` of every row of ``relations``, as one relation. Each is aliased: a relation may be a subquery,
    which PostgreSQL before 16 (and Redshift's older grammar) accepts in FROM only with an alias."""
    cols = column_list(columns)
    return "(" + " UNION ALL ".join(f"SELECT {cols} FROM {r} w{i}" for i, r in enumerate(relations)) + ")"


def _primary_key(target: Target, table: Table) -> list[Check]:
    t = target.dialect.qualified(target.schema, table.name)
    key = table.primary_key
    rows, keys = t, t
    if target.scope is not None:
        # The table's rows holding a key the night wrote, matched on the columns that key determines too (a play's
        # session), so the scan skips earlier nights' blocks by their ranges; and the rows it wrote, for nulls.
        written = target.scope.written_with(table.name, *key, *table.locality)
        if not written:
            return []
        match = " AND ".join(f"w.{quote(c)} = r.{quote(c)}" for c in (*key, *table.locality))
        near = _values(written, (*key, *table.locality))
        rows = f"(SELECT * FROM {t} r WHERE EXISTS (SELECT 1 FROM {near} w WHERE {match})) x"
        keys = f"{_values(target.scope.written_with(table.name, *key), key)} w"
    null_keys = " OR ".join(f"{quote(k)} IS NULL" for k in key)
    return [
        Check(
            f"{table.name}.primary_key_unique",
            target.dialect.repeated_keys(table, rows),
            0,
            f"rows of {table.name} repeating another row's key",
        ),
        Check(
            f"{table.name}.primary_key_not_null",
            f"SELECT COUNT(*) FROM {keys} WHERE {null_keys}",
            0,
            f"rows of {table.name} with a null key",
        ),
    ]


def _foreign_key(target: Target, table: Table, fk: ForeignKey) -> list[Check]:
    schema, d = target.schema, target.dialect
    t, parent = d.qualified(schema, table.name), d.qualified(schema, fk.ref_table)
    col, ref = quote(fk.column), quote(fk.ref_column)
    name = f"{table.name}.{fk.column}_in_{fk.ref_table}"
    explain = f"{table.name}.{fk.column} values missing from {fk.ref_table}.{fk.ref_column}"
    # An outer join kept where nothing matched, not NOT EXISTS: the same count (a parent's repeated or null keys
    # change nothing), and DuckDB plans it as a plain anti-join, several times faster.
    orphans = (
        f"SELECT COUNT(*) FROM {{rows}} c LEFT JOIN {{parents}} p ON p.{ref} = c.{col} "
        f"WHERE c.{col} IS NOT NULL AND p.{ref} IS NULL"
    )
    if target.scope is None:
        checks = [Check(name, orphans.format(rows=t, parents=parent), 0, explain)]
        values = t
    else:
        parts, values = _confined_orphans(target.scope, table, fk, t, parent, orphans)
        if not parts:
            return []
        checks = [Check(name, "SELECT " + " + ".join(f"({p})" for p in parts), 0, explain)]
    if not fk.nullable and values:
        checks.append(
            Check(
                f"{table.name}.{fk.column}_not_null",
                f"SELECT COUNT(*) FROM {values} WHERE {col} IS NULL",
                0,
                f"rows of {table.name} with no {fk.column}",
            )
        )
    return checks


def _confined_orphans(
    scope: Scope, table: Table, fk: ForeignKey, t: str, parent: str, orphans: str
) -> tuple[list[str], str]:
    """A night's orphans: values it wrote that no parent holds (the parents looked up by those values only), and
    stored rows that refer to a parent key it deleted and did not write again. Also the written values, for
    the not-null check ('' if none)."""
    col, ref = quote(fk.column), quote(fk.ref_column)
    parts: list[str] = []
    written = scope.written_with(table.name, fk.column)
    values = ""
    if written:
        rows = _values(written, (fk.column,))
        values = f"{rows} w"
        wanted = f"(SELECT {ref} FROM {parent} WHERE {ref} IN (SELECT {col} FROM {rows} v))"
        parts.append(orphans.format(rows=rows, parents=wanted))
    deleted = scope.deleted.get(fk.ref_table, ())
    if deleted:
        again = scope.written_with(fk.ref_table, fk.ref_column)
        gone = " UNION ".join(f"SELECT {ref} FROM {r}" for r in deleted)
        if again:
            gone = f"({gone}) EXCEPT SELECT {ref} FROM {_values(again, (fk.ref_column,))} a"
        parts.append(orphans.format(rows=t, parents=parent) + f" AND c.{col} IN (SELECT {ref} FROM ({gone}) g)")
    return parts, values
