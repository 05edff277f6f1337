"""The SQL reconciliation reads with: which events are contested, which users hold duplicate records, and the
kept records in given windows of users' histories. Every query reads the stored records not being replaced
and this run's staged ones, so it sees the records as they will be after the load."""

from __future__ import annotations

from pipeline.core.schema import EVENT_KEYS, EVENT_RECORDS, Table
from pipeline.core.sql import Dialect, column_list, join_on


def rows_for_keys(d: Dialect, schema: str, table: Table, keys: str) -> str:
    """Every stored row of ``table`` whose replace key is in ``keys``."""
    t = d.qualified(schema, table.name)
    on = join_on("t", "k", table.replace_key)
    return f"SELECT {column_list(table.column_names, 't.')} FROM {t} t JOIN {keys} k ON {on}"


def contested_events(d: Dialect, schema: str, staged: str, run_files: str, redelivered: bool = True) -> str:
    """Natural keys of events whose rows cannot simply be added: they must be derived from every record.

    A key is contested when a record of it is being replaced (its file is reloaded), when a staged record
    meets a stored one from another file, or when the run stages it more than once.
    """
    r = d.qualified(schema, EVENT_RECORDS.name)
    key = EVENT_KEYS.primary_key
    k = column_list(key)
    files = f'(SELECT "file" FROM {run_files})'
    return (
        f'SELECT {column_list(key, "r.")} FROM {r} r WHERE r."user_id" <> \'\' AND r."file" IN {files} '
        f"UNION SELECT {column_list(key, 's.')} FROM {staged} s JOIN {r} r ON {join_on('r', 's', key)} "
        f'WHERE s."user_id" <> \'\' AND r."file" NOT IN {files} '
        f"UNION SELECT {k} FROM {staged} WHERE \"user_id\" <> '' GROUP BY {k} HAVING COUNT(*) > 1"
    )


def records_in_windows(
    d: Dialect, schema: str, staged: str, run_files: str, windows: str, columns: list[str] | None = None
) -> str:
    """Every current record (stored ones not being replaced, and this run's) in each window of ``windows``
    (``schema.REDERIVE``): from ``from_ts`` to ``to_ts``, and at the first millisecond after it (up to
    ``until_ts``). The first millisecond is a grouped minimum: nothing is sorted.

    The records are a common table expression read three times, which DuckDB and PostgreSQL compute once:
    written out three times, the staged records were scanned three times."""
    columns = columns or EVENT_RECORDS.column_names
    cols = column_list(columns)
    cur = _current_records(d, schema, staged, run_files, windows, columns)
    first_after = (
        'SELECT "user_id", "from_ts", MIN("ts") AS "next_ts" FROM "cur" x WHERE "ts" > "to_ts" '
        'GROUP BY "user_id", "from_ts"'
    )
    return (
        f'WITH "cur" AS ({cur}) SELECT {cols} FROM "cur" c WHERE "ts" <= "to_ts" '
        f'UNION ALL SELECT {column_list(columns, "c.")} FROM "cur" c JOIN ({first_after}) n '
        'ON n."user_id" = c."user_id" AND n."from_ts" = c."from_ts" AND n."next_ts" = c."ts"'
    )


def _current_records(
    d: Dialect, schema: str, staged: str, run_files: str, windows: str, columns: list[str] | None = None
) -> str:
    r = d.qualified(schema, EVENT_RECORDS.name)
    cols = [c for c in columns or EVENT_RECORDS.column_names if c not in ("user_id", "ts")] + ["user_id", "ts"]
    on = '{a}."user_id" = w."user_id" AND {a}."ts" BETWEEN w."from_ts" AND w."until_ts"'
    extra = 'w."from_ts", w."to_ts"'
    return (
        f"SELECT {column_list(cols, 'r.')}, {extra} FROM {r} r JOIN {windows} w ON {on.format(a='r')} "
        f'WHERE r."file" NOT IN (SELECT "file" FROM {run_files}) '
        f"UNION ALL SELECT {column_list(cols, 's.')}, {extra} FROM {staged} s JOIN {windows} w ON {on.format(a='s')}"
    )


def users_with_duplicates(d: Dialect, schema: str, staged: str, run_files: str, windows: str) -> str:
    """Which users of ``windows`` (``schema.REDERIVE``) have an event with a current record in one of their windows
    and another anywhere (settled on an earlier night, or met tonight): their rows must come from every record,
    read and deduplicated whole. An event held twice outside the windows changes nothing a window gives, so
    only the windows' events are looked up, by key: the night's cost, not the user's whole history."""
    r = d.qualified(schema, EVENT_RECORDS.name)
    key = EVENT_KEYS.primary_key
    inside = _current_records(d, schema, staged, run_files, windows, list(key))
    keys = f"(SELECT DISTINCT {column_list(key)} FROM ({inside}) c)"
    stored = (
        f"SELECT {column_list(key, 'r.')} FROM {r} r JOIN {keys} k ON {join_on('r', 'k', key)} "
        f'WHERE r."file" NOT IN (SELECT "file" FROM {run_files})'
    )
    new = f"SELECT {column_list(key, 's.')} FROM {staged} s JOIN {keys} k ON {join_on('s', 'k', key)}"
    return (
        f'SELECT DISTINCT "user_id" FROM ({stored} UNION ALL {new}) x GROUP BY {column_list(key)} HAVING COUNT(*) > 1'
    )


def record_counts(d: Dialect, schema: str, staged: str, run_files: str, windows: str) -> str:
    """About how many records ``records_in_windows`` gives each window: to read them in bounded chunks."""
    current = _current_records(d, schema, staged, run_files, windows, ["user_id", "ts"])
    return (
        f'SELECT "user_id", "from_ts", COUNT(*) AS n FROM ({current}) c WHERE "ts" <= "to_ts" '
        'GROUP BY "user_id", "from_ts"'
    )
