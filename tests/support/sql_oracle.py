"""An independent implementation of SPEC.md's rules in DuckDB SQL, to check the pipeline's tables against.

It shares no code with ``pipeline/``: it reads the JSON itself, and writes every rule (including the tie rules
README.md documents) as SQL from the text of the contract. Where the pipeline and this disagree on a value,
one of them misreads the contract. It handles well-formed input only (bad records are the parser's tests').
"""

from __future__ import annotations

import glob

import duckdb
import pandas as pd

from tests.support.source_types import LOG_COLUMNS

# The source fields and types as SPEC.md lists them (the same literal the benchmark's plain build reads with).

SONG_COLUMNS = (
    "{'num_songs': 'BIGINT', 'artist_id': 'VARCHAR', 'artist_latitude': 'DOUBLE', 'artist_longitude': 'DOUBLE', "
    "'artist_location': 'VARCHAR', 'artist_name': 'VARCHAR', 'song_id': 'VARCHAR', 'title': 'VARCHAR', "
    "'duration': 'DOUBLE', 'year': 'BIGINT'}"
)

STATEMENTS = [
    # The logs' text is double-encoded (SPEC.md): undo "UTF-8 bytes read as Latin-1" twice, where both steps
    # give valid UTF-8 and change the text; anything else stays as it is. (The pipeline's fallback for other
    # damage, ftfy, has no SQL counterpart; the data these tests generate carries only the source's kind.)
    """CREATE TEMP MACRO unlatin(s) AS CASE
         WHEN list_bool_or(list_transform(string_split(s, ''), lambda c: unicode(c) > 255)) THEN NULL
         ELSE try(decode(unhex(list_aggr(list_transform(string_split(s, ''), lambda c: lpad(hex(unicode(c)), 2, '0')),
                                         'string_agg', '')))) END""",
    """CREATE TEMP MACRO repaired(s) AS CASE
         WHEN unlatin(s) <> s AND unlatin(unlatin(s)) <> unlatin(s) THEN unlatin(unlatin(s)) ELSE s END""",
    """CREATE TEMP TABLE raw_ev AS SELECT * REPLACE (repaired(artist) AS artist, repaired(song) AS song,
         repaired(firstName) AS firstName, repaired(lastName) AS lastName, repaired(location) AS location,
         repaired(userAgent) AS userAgent)
       FROM logs_json""",
    "CREATE TEMP TABLE src AS SELECT * FROM songs_json",
    # The same event (userId, sessionId, itemInSession) in several records: the latest ts, then the greatest
    # value field by field, nulls lowest.
    """CREATE TEMP TABLE ev AS SELECT * EXCLUDE (rn) FROM (
         SELECT *, ROW_NUMBER() OVER (PARTITION BY userId, sessionId, itemInSession ORDER BY
           ts DESC NULLS LAST, page DESC NULLS LAST, level DESC NULLS LAST, song DESC NULLS LAST,
           artist DESC NULLS LAST, length DESC NULLS LAST, firstName DESC NULLS LAST, lastName DESC NULLS LAST,
           gender DESC NULLS LAST, location DESC NULLS LAST, userAgent DESC NULLS LAST, auth DESC NULLS LAST,
           method DESC NULLS LAST, status DESC NULLS LAST, registration DESC NULLS LAST) AS rn
         FROM raw_ev) WHERE rn = 1""",
    # Songs: per song_id the record with most known attributes, then the greatest values.
    """CREATE TEMP TABLE chosen AS SELECT * EXCLUDE (rn) FROM (
         SELECT *, ROW_NUMBER() OVER (PARTITION BY song_id ORDER BY
           (title IS NOT NULL)::INT + (artist_id IS NOT NULL)::INT + (duration IS NOT NULL)::INT
             + (COALESCE(year, 0) <> 0)::INT DESC,
           title DESC NULLS LAST, artist_id DESC NULLS LAST, duration DESC NULLS LAST, year DESC NULLS LAST,
           artist_name DESC NULLS LAST, artist_location DESC NULLS LAST, artist_latitude DESC NULLS LAST,
           artist_longitude DESC NULLS LAST, num_songs DESC NULLS LAST) AS rn
         FROM src) WHERE rn = 1""",
    """CREATE TABLE songs AS SELECT song_id, title, artist_id, NULLIF(year, 0)::SMALLINT AS year, duration
       FROM chosen""",
    r"""CREATE TABLE artists AS SELECT artist_id, name, location, latitude, longitude FROM (
         SELECT artist_id, artist_name AS name,
                CASE WHEN regexp_matches(artist_location, '^\s*$') THEN NULL ELSE artist_location END AS location,
                artist_latitude AS latitude, artist_longitude AS longitude,
                ROW_NUMBER() OVER (PARTITION BY artist_id ORDER BY
                  (artist_name IS NOT NULL)::INT + COALESCE(NOT regexp_matches(artist_location, '^\s*$'), FALSE)::INT
                    + (artist_latitude IS NOT NULL)::INT + (artist_longitude IS NOT NULL)::INT DESC,
                  artist_name DESC NULLS LAST,
                  CASE WHEN regexp_matches(artist_location, '^\s*$') THEN NULL ELSE artist_location END DESC NULLS LAST,
                  artist_latitude DESC NULLS LAST, artist_longitude DESC NULLS LAST) AS rn
         FROM src) WHERE rn = 1""",
    # A play matches a song whose own record has its title, artist name and duration; the smallest song_id.
    """CREATE TEMP TABLE lookup AS SELECT title, artist_name, duration, MIN(song_id) AS song_id,
         arg_min(artist_id, song_id) AS artist_id
       FROM chosen WHERE title IS NOT NULL AND artist_name IS NOT NULL AND duration IS NOT NULL
       GROUP BY title, artist_name, duration""",
    """CREATE TABLE songplays AS
       SELECT p.userId || ':' || p.sessionId || ':' || p.itemInSession AS songplay_id,
              make_timestamp(p.ts * 1000) AS start_time, p.userId AS user_id, p.level,
              l.song_id, l.artist_id, p.sessionId AS session_id, p.location, p.userAgent AS user_agent,
              p.song AS song_title, p.artist AS artist_name, p.length AS song_length
       FROM ev p LEFT JOIN lookup l ON l.title = p.song AND l.artist_name = p.artist AND l.duration = p.length
       WHERE p.page = 'NextSong' AND p.userId <> ''""",
    """CREATE TABLE time AS SELECT start_time, hour(start_time)::SMALLINT AS hour, day(start_time)::SMALLINT AS day,
              weekofyear(start_time)::SMALLINT AS week, month(start_time)::SMALLINT AS month,
              year(start_time)::SMALLINT AS year, isodow(start_time)::SMALLINT AS weekday
       FROM (SELECT DISTINCT start_time FROM songplays)""",
    # A user's row comes from their latest event by (ts, sessionId, itemInSession).
    """CREATE TABLE users AS SELECT user_id, first_name, last_name, gender, level, last_seen_at FROM (
         SELECT userId AS user_id, firstName AS first_name, lastName AS last_name, gender, level,
                make_timestamp(ts * 1000) AS last_seen_at,
                ROW_NUMBER() OVER (PARTITION BY userId ORDER BY ts DESC, sessionId DESC, itemInSession DESC) AS rn
         FROM ev WHERE userId <> '') WHERE rn = 1""",
    # Level periods: at each millisecond the user's level is that of the last event then; a period starts
    # where the level differs from the previous millisecond's and ends where the next one starts.
    """CREATE TABLE user_levels AS
       WITH at_ms AS (
         SELECT userId, ts, arg_max(level, sessionId * 1000000000 + itemInSession) AS level
         FROM ev WHERE userId <> '' GROUP BY userId, ts),
       marked AS (
         SELECT *, LAG(level) OVER (PARTITION BY userId ORDER BY ts) AS prev FROM at_ms),
       starts AS (
         SELECT userId, ts, level FROM marked WHERE prev IS NULL OR prev IS DISTINCT FROM level)
       SELECT userId AS user_id, level, make_timestamp(ts * 1000) AS valid_from,
              make_timestamp(LEAD(ts) OVER (PARTITION BY userId ORDER BY ts) * 1000) AS valid_to
       FROM starts""",
]

KEYS = {
    "users": ["user_id"],
    "artists": ["artist_id"],
    "songs": ["song_id"],
    "time": ["start_time"],
    "songplays": ["songplay_id"],
    "user_levels": ["user_id", "valid_from"],
}


def build(song_glob: str, log_glob: str) -> dict[str, pd.DataFrame]:
    """Every star table, by SPEC.md's rules, sorted by key."""
    con = duckdb.connect()
    try:
        for name, pattern, columns in (("songs", song_glob, SONG_COLUMNS), ("logs", log_glob, LOG_COLUMNS)):
            # Every file of a source deleted before a run saw it: no rows (DuckDB refuses a glob matching nothing).
            files = pattern if glob.glob(pattern, recursive=True) else "/dev/null"
            con.execute(
                f"CREATE TEMP TABLE {name}_json AS SELECT * FROM "
                f"read_json(?, format='newline_delimited', columns={columns})",
                [files],
            )
        for stmt in STATEMENTS:
            con.execute(stmt)
        return {
            name: con.execute(f'SELECT * FROM "{name}" ORDER BY ' + ", ".join(f'"{k}"' for k in keys)).df()
            for name, keys in KEYS.items()
        }
    finally:
        con.close()


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as text, so the two builds' Python types (Int16 vs int16, NaN vs None) do not matter."""
    out = frame.astype(object).where(frame.notna(), None)
    return out.map(lambda v: None if v is None else (repr(float(v)) if isinstance(v, float) else str(v)))


def assert_matches(tables: dict[str, pd.DataFrame], song_glob: str, log_glob: str) -> None:
    """The pipeline's tables equal the oracle's, value for value (``last_seen_at`` included)."""
    expected = build(song_glob, log_glob)
    for name, want in expected.items():
        got = tables[name][list(want.columns)].reset_index(drop=True)
        pd.testing.assert_frame_equal(_text(got), _text(want.reset_index(drop=True)), obj=name)
