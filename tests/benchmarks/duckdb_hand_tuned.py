"""The yardstick ``make bench`` holds the pipeline to: what a strong engineer writes in an afternoon with DuckDB.

Song files are read as text in one pass (``read_text`` over the glob) and their fields taken with
``json_extract_string``/``json_extract``; the logs are read with ``read_json`` and explicit column types; the
five tables are built with SQL. It keeps no records, repairs no text, checks nothing and loads into a fresh
file, so it is a lower bound on the work, not a second implementation (``tests/sql_oracle.py`` is that).
"""

from __future__ import annotations

import sys
import time

import duckdb

from .duckdb_sql_build import LOG_COLUMNS, TABLES_FROM_SOURCES

STATEMENTS = [
    "CREATE TEMP TABLE song_text AS SELECT content, filename FROM read_text($songs)",
    """CREATE TABLE song_src AS SELECT
         json_extract_string(content, '$.song_id') AS song_id,
         json_extract_string(content, '$.title') AS title,
         json_extract_string(content, '$.artist_id') AS artist_id,
         CAST(json_extract(content, '$.year') AS INTEGER) AS year,
         CAST(json_extract(content, '$.duration') AS DOUBLE) AS duration,
         json_extract_string(content, '$.artist_name') AS artist_name,
         json_extract_string(content, '$.artist_location') AS artist_location,
         CAST(json_extract(content, '$.artist_latitude') AS DOUBLE) AS artist_latitude,
         CAST(json_extract(content, '$.artist_longitude') AS DOUBLE) AS artist_longitude,
         filename
       FROM song_text""",
    "CREATE TABLE ev AS SELECT * FROM read_json($logs, format='newline_delimited', columns=" + LOG_COLUMNS + ")",
    *TABLES_FROM_SOURCES,
]


def build(song_glob: str, log_glob: str, db_path: str) -> dict[str, int]:
    con = duckdb.connect(db_path)
    for stmt in STATEMENTS:
        params = {k: v for k, v in (("songs", song_glob), ("logs", log_glob)) if f"${k}" in stmt}
        con.execute(stmt, params)
    counts = {
        t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # type: ignore[index]
        for t in ("users", "artists", "songs", "time", "songplays")
    }
    con.close()
    return counts


if __name__ == "__main__":
    start = time.perf_counter()
    print(build(sys.argv[1], sys.argv[2], sys.argv[3]), f"{time.perf_counter() - start:.2f} s")
