"""Reference point for ``make bench``: the same five tables built by DuckDB SQL alone, the plain way.

Every file read with ``read_json`` (explicit column types), then the tables built with SQL. This is a
yardstick, not a second implementation: it follows SPEC.md's rules closely enough to do the same work (read
every file, dedupe, match songs, derive time parts). ``duckdb_hand_tuned.py`` is the same build with the song
files read the fast way.
"""

from __future__ import annotations

import sys
import time

import duckdb

from tests.support.source_types import LOG_COLUMNS

SONG_COLUMNS = (
    "{'song_id': 'VARCHAR', 'title': 'VARCHAR', 'artist_id': 'VARCHAR', 'year': 'INTEGER', 'duration': 'DOUBLE', "
    "'artist_name': 'VARCHAR', 'artist_location': 'VARCHAR', 'artist_latitude': 'DOUBLE', "
    "'artist_longitude': 'DOUBLE'}"
)

TABLES_FROM_SOURCES = [
    """CREATE TABLE songs AS SELECT DISTINCT ON (song_id) song_id, title, artist_id,
              NULLIF(year, 0)::SMALLINT AS year, duration
       FROM song_src ORDER BY song_id, filename""",
    """CREATE TABLE artists AS SELECT DISTINCT ON (artist_id) artist_id, artist_name AS name,
              NULLIF(artist_location, '') AS location, artist_latitude AS latitude, artist_longitude AS longitude
       FROM song_src ORDER BY artist_id, filename""",
    """CREATE TABLE users AS SELECT DISTINCT ON (userId) userId AS user_id, firstName AS first_name,
              lastName AS last_name, gender, level
       FROM ev WHERE userId <> '' ORDER BY userId, ts DESC, sessionId DESC, itemInSession DESC""",
    """CREATE TABLE songplays AS
       WITH lookup AS (SELECT DISTINCT ON (title, artist_name, duration) title, artist_name, duration,
                              song_id, artist_id FROM song_src ORDER BY title, artist_name, duration, song_id),
            plays AS (SELECT DISTINCT ON (userId, sessionId, itemInSession) * FROM ev
                      WHERE page = 'NextSong' AND userId <> '')
       SELECT p.userId || ':' || p.sessionId || ':' || p.itemInSession AS songplay_id,
              make_timestamp(p.ts * 1000) AS start_time, p.userId AS user_id, p.level,
              l.song_id, l.artist_id, p.sessionId AS session_id, p.location, p.userAgent AS user_agent
       FROM plays p LEFT JOIN lookup l
         ON l.title = p.song AND l.artist_name = p.artist AND l.duration = p.length""",
    """CREATE TABLE time AS SELECT start_time, hour(start_time) AS hour, day(start_time) AS day,
              weekofyear(start_time) AS week, month(start_time) AS month, year(start_time) AS year,
              isodow(start_time) AS weekday
       FROM (SELECT DISTINCT start_time FROM songplays)""",
]

STATEMENTS = [
    f"CREATE TABLE song_src AS SELECT * FROM read_json($songs, columns={SONG_COLUMNS}, filename=true)",
    "CREATE TABLE ev AS SELECT * FROM read_json($logs, format='newline_delimited', columns=" + LOG_COLUMNS + ")",
    *TABLES_FROM_SOURCES,
]


def build(song_glob: str, log_glob: str, db_path: str, statements: list[str] = STATEMENTS) -> dict[str, int]:
    con = duckdb.connect(db_path)
    for stmt in statements:
        params = {k: v for k, v in (("songs", song_glob), ("logs", log_glob)) if f"${k}" in stmt}
        con.execute(stmt, params)
    counts = {
        t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # type: ignore[index]
        for t in ("users", "artists", "songs", "time", "songplays")
    }
    con.close()
    return counts


def main(statements: list[str] = STATEMENTS) -> None:
    """``SONG_GLOB LOG_GLOB DB_PATH``: build, print the row counts and the seconds taken."""
    start = time.perf_counter()
    print(build(sys.argv[1], sys.argv[2], sys.argv[3], statements), f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
