"""SQL derived from the schema definition, per warehouse dialect.

Only identifiers from ``schema.py`` and validated config (the schema name) ever reach these strings;
values travel as parameters or in staged files, never interpolated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .schema import ALL_TABLES, Column, Kind, Table

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


@dataclass(frozen=True)
class Dialect:
    name: str
    # Redshift sizes VARCHAR in bytes and needs a length; DuckDB's VARCHAR has none.
    sized_text: bool
    # Declared but not enforced on Redshift; DuckDB enforces them and cannot delete a referenced row,
    # which a merge must do, so there they are left to the pipeline's own checks.
    declare_foreign_keys: bool
    # DuckDB enforces primary keys with an index that costs more than the rest of the merge (about 6 s
    # per 8M songplays, at insert and again at commit); the pipeline's checks verify keys on every load.
    declare_primary_keys: bool
    physical_design: bool
    # DB-API parameter marker.
    param: str

    def type_name(self, col: Column) -> str:
        if col.kind is Kind.TEXT:
            return f"VARCHAR({col.max_bytes or 256})" if self.sized_text else "VARCHAR"
        return {
            Kind.INT: "INTEGER",
            Kind.BIGINT: "BIGINT",
            Kind.SMALLINT: "SMALLINT",
            Kind.DOUBLE: "DOUBLE PRECISION",
            Kind.TIMESTAMP: "TIMESTAMP",
        }[col.kind]

    def qualified(self, schema: str, table: str) -> str:
        return f"{quote(schema)}.{quote(table)}"

    def create_schema(self, schema: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}"

    def drop_schema_tables(self, schema: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {self.qualified(schema, t.name)}" for t in reversed(ALL_TABLES)]

    def create_table(self, schema: str, table: Table) -> str:
        lines = [f"    {quote(c.name)} {self.type_name(c)}{'' if c.nullable else ' NOT NULL'}" for c in table.columns]
        if self.declare_primary_keys:
            lines.append(f"    PRIMARY KEY ({', '.join(quote(k) for k in table.primary_key)})")
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
                ddl += f"\nSORTKEY ({', '.join(quote(k) for k in table.sort_key)})"
        return ddl

    def merge(self, schema: str, table: Table, staging: str) -> list[str]:
        """Upsert the staged rows by primary key, as DELETE + INSERT (portable to every target).

        With a version column, a stored row is replaced only by a staged row that is not older, and a
        staged row is inserted only where no row of that key remains, so old data arriving late
        never overwrites newer data.
        """
        target = self.qualified(schema, table.name)
        stg = quote(staging)
        match = " AND ".join(f"{target}.{quote(k)} = {stg}.{quote(k)}" for k in table.primary_key)
        newer = (
            f" AND {stg}.{quote(table.version_column)} >= {target}.{quote(table.version_column)}"
            if (table.version_column)
            else ""
        )
        cols = ", ".join(quote(c) for c in table.column_names)
        exists = " AND ".join(f"t.{quote(k)} = {stg}.{quote(k)}" for k in table.primary_key)
        return [
            f"DELETE FROM {target} USING {stg} WHERE {match}{newer}",
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stg} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {exists})",
        ]

    def repeated_keys(self, table: Table, relation: str) -> str:
        """How many rows of ``relation`` (a quoted name) repeat a key an earlier row holds.

        With one key column, ``COUNT(k) - COUNT(DISTINCT k)`` is one aggregate instead of a GROUP BY
        and a count over its groups: half the time on 8M songplays in DuckDB. Null keys are not counted.
        """
        if len(table.primary_key) == 1:
            key = quote(table.primary_key[0])
            return f"SELECT COUNT({key}) - COUNT(DISTINCT {key}) FROM {relation}"
        keys = ", ".join(quote(k) for k in table.primary_key)
        known = " AND ".join(f"{quote(k)} IS NOT NULL" for k in table.primary_key)
        return (
            f"SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM {relation} WHERE {known} "
            f"GROUP BY {keys} HAVING COUNT(*) > 1) d"
        )

    def one_per_key(self, table: Table, source: str, target: str) -> str:
        """A temporary copy of ``source`` with one row per key: the newest by version column if any."""
        cols = ", ".join(quote(c) for c in table.column_names)
        keys = ", ".join(quote(k) for k in table.primary_key)
        order = f"{quote(table.version_column)} DESC" if table.version_column else keys
        return (
            f"CREATE TEMPORARY TABLE {quote(target)} AS SELECT {cols} FROM ("
            f"SELECT {cols}, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {order}) AS rn__ "
            f"FROM {quote(source)}) d WHERE rn__ = 1"
        )

    def song_lookup(self, schema: str) -> str:
        """The stored catalogue in the shape ``transform.song_lookup`` returns, for incremental runs."""
        songs, artists = self.qualified(schema, "songs"), self.qualified(schema, "artists")
        return (
            f'SELECT s."title" AS song, a."name" AS artist, s."duration" AS length, s."song_id", s."artist_id" '
            f'FROM {songs} s JOIN {artists} a ON a."artist_id" = s."artist_id"'
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
)
