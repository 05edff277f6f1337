"""SQL derived from the schema definition, per warehouse dialect.

Only identifiers from ``schema.py`` and validated config (the schema name) ever reach these strings;
values travel as parameters or in staged files, never interpolated. Every statement here is plain SQL that
DuckDB, Redshift and PostgreSQL all accept, so the load is the same sequence of statements on every target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.core.schema import SONGPLAYS, TIME, TYPES, Column, Kind, Table

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def validate_identifier(name: str, what: str) -> str:
    """Reject anything that is not a plain SQL identifier, so config cannot smuggle SQL in."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{what}: {name!r} is not a valid identifier (letters, digits, _; at most 63)")
    return name


def quote(name: str) -> str:
    # Every identifier is quoted: "time", "year" and "day" are keywords somewhere.
    return '"' + validate_identifier(name, "identifier") + '"'


def literal(value: str) -> str:
    """A SQL string literal, for the few places a statement cannot take parameters (a view's body)."""
    return "'" + value.replace("'", "''") + "'"


def column_list(names: list[str] | tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{quote(c)}" for c in names)


def join_on(left: str, right: str, keys: tuple[str, ...] | list[str]) -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in keys)


@dataclass(frozen=True)
class Dialect:
    name: str
    # Redshift sizes VARCHAR in bytes and needs a length; DuckDB's VARCHAR has none.
    sized_text: bool
    # Declared but not enforced on Redshift; DuckDB enforces them and cannot delete a referenced row,
    # which a merge must do, so there they are left to the pipeline's own checks.
    declare_foreign_keys: bool
    # DuckDB enforces primary keys with an index that costs more than the rest of the merge (at insert and again
    # at commit); the pipeline's checks verify keys on every load.
    declare_primary_keys: bool
    physical_design: bool
    # DB-API parameter marker.
    param: str
    # Redshift reads a backslash in a string literal as an escape; DuckDB (and standard SQL) do not.
    backslash_escapes: bool = False

    def literal(self, value: str) -> str:
        """A string literal this warehouse reads back as exactly ``value``."""
        if self.backslash_escapes:
            value = value.replace("\\", "\\\\")
        return literal(value)

    def type_name(self, col: Column) -> str:
        sql = TYPES[col.kind].sql
        if col.kind is Kind.TEXT and self.sized_text:
            return f"{sql}({col.max_bytes or 256})"
        return sql

    def qualified(self, schema: str, table: str) -> str:
        return f"{quote(schema)}.{quote(table)}"

    # ------------------------------------------------------------------------------------------ DDL

    def create_schema(self, schema: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}"

    def drop_tables(self, schema: str, tables: tuple[Table, ...]) -> list[str]:
        return [f"DROP TABLE IF EXISTS {self.qualified(schema, t.name)}" for t in reversed(tables)]

    def create_table(self, schema: str, table: Table) -> str:
        lines = [f"    {quote(c.name)} {self.type_name(c)}{'' if c.nullable else ' NOT NULL'}" for c in table.columns]
        if self.declare_primary_keys:
            lines.append(f"    PRIMARY KEY ({column_list(table.primary_key)})")
        if self.declare_foreign_keys:
            lines += [
                f"    FOREIGN KEY ({quote(fk.column)}) REFERENCES "
                f"{self.qualified(schema, fk.ref_table)} ({quote(fk.ref_column)})"
                for fk in table.foreign_keys
            ]
        ddl = f"CREATE TABLE IF NOT EXISTS {self.qualified(schema, table.name)} (\n" + ",\n".join(lines) + "\n)"
        if self.physical_design:
            ddl += f"\nDISTSTYLE {table.dist_style}"
            if table.dist_key:
                ddl += f"\nDISTKEY ({quote(table.dist_key)})"
            if table.sort_key:
                ddl += f"\nSORTKEY ({column_list(table.sort_key)})"
        return ddl

    def create_temp_table(self, table: Table, name: str) -> str:
        cols = ", ".join(f"{quote(c.name)} {self.type_name(c)}" for c in table.columns)
        return f"CREATE TEMPORARY TABLE {quote(name)} ({cols})"

    def columns_of(self, schema: str) -> tuple[str, list[str]]:
        """The stored tables' columns, to compare with ``schema.py`` before a run writes anything."""
        return (
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
            f"{self.param} ORDER BY table_name, ordinal_position",
            [schema],
        )

    # ------------------------------------------------------------------------------------------ merges

    def delete_keys(self, schema: str, table: Table, keys: str) -> str:
        """Remove the rows of ``table`` whose replace key is in the relation ``keys`` (a quoted name)."""
        target = self.qualified(schema, table.name)
        return f"DELETE FROM {target} USING {keys} WHERE {join_on(target, keys, table.replace_key)}"

    def insert(self, schema: str, table: Table, source: str, where: str = "") -> str:
        cols = column_list(table.column_names)
        return f"INSERT INTO {self.qualified(schema, table.name)} ({cols}) SELECT {cols} FROM {source}{where}"

    def insert_missing(self, schema: str, table: Table, source: str) -> str:
        """Rows of ``source`` whose key the table does not hold yet, once each (rows of one key are equal)."""
        target = self.qualified(schema, table.name)
        cols = column_list(table.column_names)
        return (
            f"INSERT INTO {target} ({cols}) SELECT DISTINCT {column_list(table.column_names, 's.')} FROM {source} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {join_on('t', 's', table.primary_key)})"
        )

    def delete_orphan_times(self, schema: str, candidates: str) -> str:
        """Remove ``time`` rows among ``candidates`` (start times of removed plays) that no play has any more."""
        t, plays = self.qualified(schema, TIME.name), self.qualified(schema, SONGPLAYS.name)
        return (
            f'DELETE FROM {t} WHERE "start_time" IN (SELECT "start_time" FROM {candidates}) '
            f'AND "start_time" NOT IN (SELECT p."start_time" FROM {plays} p JOIN {candidates} c '
            'ON c."start_time" = p."start_time")'
        )

    def start_times_of(self, schema: str, keys: str, into: str, staged: str | None) -> str:
        """The start times of the plays ``keys`` names, stored or staged: where ``time`` may lose a row."""
        plays = self.qualified(schema, SONGPLAYS.name)
        of = f'SELECT p."start_time" FROM {{}} p JOIN {keys} k ON k."songplay_id" = p."songplay_id"'
        union = f" UNION {of.format(staged)}" if staged else ""
        return f"CREATE TEMPORARY TABLE {quote(into)} AS {of.format(plays)}{union}"

    def rematch(self, schema: str, changes: str) -> str:
        """Match stored plays again where the catalogue changed the song of their (title, artist, length)."""
        plays = self.qualified(schema, SONGPLAYS.name)
        return (
            f'UPDATE {plays} SET "song_id" = c."song_id", "artist_id" = c."artist_id" FROM {changes} c '
            f"WHERE {join_on(plays, 'c', ('song_title', 'artist_name', 'song_length'))}"
        )

    # ------------------------------------------------------------------------------------------ reconciliation

    def repeated_keys(self, table: Table, relation: str) -> str:
        """How many rows of ``relation`` (a quoted name) repeat a key an earlier row holds.

        With one key column, ``COUNT(k) - COUNT(DISTINCT k)`` is one aggregate instead of a GROUP BY
        and a count over its groups: half the time on 8M songplays in DuckDB. Null keys are not counted.
        """
        if len(table.primary_key) == 1:
            key = quote(table.primary_key[0])
            return f"SELECT COUNT({key}) - COUNT(DISTINCT {key}) FROM {relation}"
        keys = column_list(table.primary_key)
        known = " AND ".join(f"{quote(k)} IS NOT NULL" for k in table.primary_key)
        return (
            f"SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM {relation} WHERE {known} "
            f"GROUP BY {keys} HAVING COUNT(*) > 1) d"
        )


DUCKDB = Dialect(
    name="duckdb",
    sized_text=False,
    declare_foreign_keys=False,
    declare_primary_keys=False,
    physical_design=False,
    param="?",
)
REDSHIFT = Dialect(
    name="redshift",
    sized_text=True,
    declare_foreign_keys=True,
    declare_primary_keys=True,
    physical_design=True,
    param="%s",
    backslash_escapes=True,
)
