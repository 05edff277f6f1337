"""The analysts' questions, answered from the warehouse: the same SQL on DuckDB and Redshift.

Each method returns a small frame, for notebooks, the HTML report, or a dashboard, and each states the
question it answers; each question's SQL comes from its ``*_sql`` method. The SQL is plain ANSI with window
functions, ``DATE_TRUNC`` and ``EXTRACT(EPOCH ...)``, which DuckDB and Redshift (and Postgres, the Redshift
stand-in of the tests) read alike; ``Analytics.sql(question, ...)`` gives any of it as text to reuse.

Browsers and operating systems come from ``ua-parser`` (the maintained port of the uap-core rules), applied to
the few distinct user agents rather than to every play.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import pandas as pd

from pipeline.core.schema import SONG_RECORDS
from pipeline.load.base import Destination

# Why a play found no song, in the order the reasons are tested (the first that holds).
NO_TITLE = "no song of that title"
OTHER_ARTIST = "title found, another artist"
OTHER_LENGTH = "title and artist found, another length"
MATCHED = "matched"
NO_SONG_FIELD = "no title, artist or length in the event"
MATCH_REASONS = (MATCHED, NO_TITLE, OTHER_ARTIST, OTHER_LENGTH, NO_SONG_FIELD)
# The questions whose SQL ``Analytics.sql`` gives as text.
QUESTIONS = (
    "match_breakdown",
    "top_unmatched",
    "top_songs",
    "top_artists",
    "weekly_plays",
    "movers",
    "promotion_targets",
    "active_users_per_day",
    "known_users_by_level_per_day",
    "level_changes",
    "co_play_seeds",
    "played_with",
)
# Sessions holding both songs, and holding the song at all, before a co-played song is ranked: below them, lift is
# noise (a song played in three sessions, all with the seed, would top every list).
MIN_TOGETHER = 3
# Free periods shorter than this many days neither make a promotion target nor count as an upgrade to compare with.
MIN_FREE_DAYS = 1
MIN_SONG_SESSIONS = 5
# A seed in this share of all sessions or more cannot show an association: no song can be with it much more often
# than chance already puts it there.
MAX_SEED_SHARE = 0.2


@lru_cache(maxsize=4096)
def browser_and_os(user_agent: str | None) -> tuple[str, str]:
    if not user_agent:
        return ("unknown", "unknown")
    from ua_parser import parse

    result = parse(user_agent.strip('"'))
    browser = result.user_agent.family if result.user_agent else "Other"
    os_family = result.os.family if result.os else "Other"
    return (browser, os_family)


def _ints(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Counts come back as int64 whatever the driver returns (Decimal, Int64, float)."""
    for c in columns:
        frame[c] = pd.to_numeric(frame[c]).fillna(0).astype("int64")
    return frame


class Analytics:
    def __init__(self, dest: Destination):
        # The published read copy where the warehouse has one: a report or a notebook never blocks the night.
        self.dest = dest.reader()

    def _t(self, name: str) -> str:
        return self.dest.dialect.qualified(self.dest.schema, name)

    def q(self, sql: str) -> pd.DataFrame:
        return self.dest.query(sql)

    def sql(self, question: str, **kwargs: Any) -> str:
        """The SQL text of ``question`` (one of ``QUESTIONS``) for this warehouse, to reuse in another tool."""
        if question not in QUESTIONS:
            raise ValueError(f"unknown question {question!r}; one of: {', '.join(QUESTIONS)}")
        builder: Callable[..., str] = getattr(self, f"{question}_sql")
        return builder(**kwargs)

    # ------------------------------------------------------------------------------------------ overview

    def headline(self) -> dict[str, int | float]:
        row = self.q(
            f"SELECT (SELECT COUNT(*) FROM {self._t('songplays')}) AS plays, "
            f"(SELECT COUNT(song_id) FROM {self._t('songplays')}) AS matched_plays, "
            f"(SELECT COUNT(*) FROM {self._t('users')}) AS users, "
            f"(SELECT COUNT(*) FROM {self._t('songs')}) AS songs, "
            f"(SELECT COUNT(*) FROM {self._t('artists')}) AS artists"
        ).iloc[0]
        out: dict[str, int | float] = {str(k): int(v) for k, v in row.items()}
        out["match_rate"] = out["matched_plays"] / out["plays"] if out["plays"] else 0.0
        return out

    def period(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The first and last play's start time (UTC): the period the data covers. None without plays."""
        row = self.q(f"SELECT MIN(start_time) AS first, MAX(start_time) AS last FROM {self._t('songplays')}").iloc[0]
        return None if pd.isna(row["first"]) else (pd.Timestamp(row["first"]), pd.Timestamp(row["last"]))

    def plays_by_hour(self) -> pd.DataFrame:
        return self.q(
            f"SELECT t.hour, COUNT(*) AS plays FROM {self._t('songplays')} p "
            f"JOIN {self._t('time')} t ON t.start_time = p.start_time GROUP BY t.hour ORDER BY t.hour"
        )

    def plays_per_day(self) -> pd.DataFrame:
        """Plays on each (UTC) day that has any."""
        return _ints(
            self.q(
                f"SELECT DATE_TRUNC('day', start_time) AS day, COUNT(*) AS plays FROM {self._t('songplays')} "
                "GROUP BY DATE_TRUNC('day', start_time) ORDER BY day"
            ),
            "plays",
        )

    def plays_by_weekday(self) -> pd.DataFrame:
        """Weekday is ISO: 1 = Monday ... 7 = Sunday."""
        return self.q(
            f"SELECT t.weekday, COUNT(*) AS plays FROM {self._t('songplays')} p "
            f"JOIN {self._t('time')} t ON t.start_time = p.start_time GROUP BY t.weekday ORDER BY t.weekday"
        )

    def plays_by_agent(self) -> pd.DataFrame:
        """Plays by browser and operating system."""
        agents = self.q(f"SELECT user_agent, COUNT(*) AS plays FROM {self._t('songplays')} GROUP BY user_agent")
        parsed = agents["user_agent"].map(lambda ua: browser_and_os(None if pd.isna(ua) else str(ua)))
        agents["browser"] = parsed.map(lambda x: x[0])
        agents["os"] = parsed.map(lambda x: x[1])
        agents["plays"] = agents["plays"].astype("int64")
        out: pd.DataFrame = agents.groupby(["browser", "os"], as_index=False).agg(plays=("plays", "sum"))
        return out

    # ------------------------------------------------------------------------------- songs and matching

    def top_songs(self, n: int = 10) -> pd.DataFrame:
        """Most played songs, from every play, named by the title and artist the app played.

        ``in_catalogue`` says whether those plays match a song of the catalogue (``songs``), so a song the
        catalogue lacks still shows up, marked as such.
        """
        return _ints(
            self.q(self.top_songs_sql(n)).assign(in_catalogue=lambda f: pd.to_numeric(f["matched_plays"]) > 0),
            "plays",
            "matched_plays",
            "listeners",
        )

    def top_songs_sql(self, n: int = 10) -> str:
        return (
            "SELECT song_title AS title, artist_name AS artist, COUNT(*) AS plays, "
            "COUNT(song_id) AS matched_plays, COUNT(DISTINCT user_id) AS listeners "
            f"FROM {self._t('songplays')} WHERE song_title IS NOT NULL "
            f"GROUP BY song_title, artist_name ORDER BY plays DESC, title, artist LIMIT {int(n)}"
        )

    def top_artists(self, n: int = 10) -> pd.DataFrame:
        """Most played artists, by the artist name the app played (every play, matched or not)."""
        return _ints(self.q(self.top_artists_sql(n)), "plays", "listeners")

    def top_artists_sql(self, n: int = 10) -> str:
        return (
            "SELECT artist_name AS artist, COUNT(*) AS plays, COUNT(DISTINCT user_id) AS listeners "
            f"FROM {self._t('songplays')} WHERE artist_name IS NOT NULL "
            f"GROUP BY artist_name ORDER BY plays DESC, artist LIMIT {int(n)}"
        )

    def _classified(self, only_unmatched: bool) -> str:
        """Plays grouped by played (title, artist) and whether they matched, with ``reason`` (``MATCH_REASONS``).

        For an unmatched play the reason depends on its title and artist only, so a pair played at several
        lengths is one row. The catalogue side is the kept song records: matching compares each song file's
        own ``artist_name``, which ``artists.name`` (one spelling per artist) does not always equal. Joins to
        distinct sets rather than correlated subqueries, which Redshift supports only in some positions.
        """
        lit = self.dest.dialect.literal
        records = self._t(SONG_RECORDS.name)
        where = "WHERE song_id IS NULL " if only_unmatched else ""
        played = (
            "SELECT song_title, artist_name, CASE WHEN song_id IS NULL THEN 0 ELSE 1 END AS matched, "
            "CASE WHEN song_length IS NULL THEN 1 ELSE 0 END AS no_length, COUNT(*) AS plays "
            f"FROM {self._t('songplays')} {where}GROUP BY song_title, artist_name, "
            "CASE WHEN song_id IS NULL THEN 0 ELSE 1 END, CASE WHEN song_length IS NULL THEN 1 ELSE 0 END"
        )
        return (
            "SELECT p.song_title, p.artist_name, p.plays, "
            f"CASE WHEN p.matched = 1 THEN {lit(MATCHED)} "
            "WHEN p.song_title IS NULL OR p.artist_name IS NULL OR p.no_length = 1 "
            f"THEN {lit(NO_SONG_FIELD)} "
            f"WHEN t.title IS NULL THEN {lit(NO_TITLE)} "
            f"WHEN ta.title IS NULL THEN {lit(OTHER_ARTIST)} "
            f"ELSE {lit(OTHER_LENGTH)} END AS reason "
            f"FROM ({played}) p "
            f"LEFT JOIN (SELECT DISTINCT title FROM {records}) t ON t.title = p.song_title "
            f"LEFT JOIN (SELECT DISTINCT title, artist_name FROM {records}) ta "
            "ON ta.title = p.song_title AND ta.artist_name = p.artist_name"
        )

    def match_breakdown(self) -> pd.DataFrame:
        """Plays by whether they matched a song, and if not, why: a catalogue gap (no song of that title) or
        a data-quality problem (the title exists, by another artist or with another length)."""
        out = _ints(self.q(self.match_breakdown_sql()), "plays")
        total = out["plays"].sum()
        out["share"] = out["plays"] / total if total else 0.0
        return out

    def match_breakdown_sql(self) -> str:
        lit = self.dest.dialect.literal
        order = " ".join(f"WHEN {lit(r)} THEN {i}" for i, r in enumerate(MATCH_REASONS))
        return (
            f"SELECT reason, SUM(plays) AS plays FROM ({self._classified(False)}) x GROUP BY reason "
            f"ORDER BY CASE reason {order} END"
        )

    def top_unmatched(self, n: int = 15) -> pd.DataFrame:
        """The most played (song, artist) pairs that found no song, with the reason (``match_breakdown``)."""
        return _ints(self.q(self.top_unmatched_sql(n)), "plays")

    def top_unmatched_sql(self, n: int = 15) -> str:
        return (
            "SELECT c.song_title AS title, c.artist_name AS artist, SUM(c.plays) AS plays, MIN(c.reason) AS reason "
            f"FROM ({self._classified(True)}) c WHERE c.song_title IS NOT NULL "
            "GROUP BY c.song_title, c.artist_name "
            f"ORDER BY plays DESC, title, artist LIMIT {int(n)}"
        )

    # ---------------------------------------------------------------------------------------- levels

    def levels(self) -> pd.DataFrame:
        """Users by current level, and plays by the level at the time of the play (two different units)."""
        users = self.q(f"SELECT level, COUNT(*) AS users FROM {self._t('users')} GROUP BY level")
        plays = self.q(f"SELECT level, COUNT(*) AS plays FROM {self._t('songplays')} GROUP BY level")
        out = users.merge(plays, on="level", how="outer").fillna(0).sort_values("level").reset_index(drop=True)
        return _ints(out, "users", "plays")

    def level_changes(self) -> pd.DataFrame:
        """Every upgrade and downgrade: who, when, from and to which level (from ``user_levels``)."""
        return self.q(self.level_changes_sql())

    def level_changes_sql(self) -> str:
        return (
            "SELECT user_id, valid_from AS changed_at, prev_level AS from_level, level AS to_level FROM ("
            "SELECT user_id, valid_from, level, "
            "LAG(level) OVER (PARTITION BY user_id ORDER BY valid_from) AS prev_level "
            f"FROM {self._t('user_levels')}) x "
            "WHERE prev_level IS NOT NULL ORDER BY changed_at, user_id"
        )

    def active_users_per_day(self) -> pd.DataFrame:
        """Users who played at least one song on each (UTC) day, by their level when they played: what an analyst
        means by users per day. A user who changed level during a day counts at both levels that day."""
        return _ints(self.q(self.active_users_per_day_sql()), "users")

    def active_users_per_day_sql(self) -> str:
        return (
            "SELECT DATE_TRUNC('day', start_time) AS day, level, COUNT(DISTINCT user_id) AS users "
            f"FROM {self._t('songplays')} GROUP BY DATE_TRUNC('day', start_time), level ORDER BY day, level"
        )

    def known_users_by_level_per_day(self) -> pd.DataFrame:
        """Every user seen so far, by the level they held on each (UTC) day (a period of ``user_levels``
        overlapping it), whether or not they played that day: the subscriber base, not the activity.

        A user who changed level during a day counts at both levels that day.
        """
        return _ints(self.q(self.known_users_by_level_per_day_sql()), "users")

    def known_users_by_level_per_day_sql(self) -> str:
        days = f"SELECT DISTINCT DATE_TRUNC('day', start_time) AS day FROM {self._t('time')}"
        return (
            "SELECT d.day, l.level, COUNT(DISTINCT l.user_id) AS users "
            f"FROM ({days}) d JOIN {self._t('user_levels')} l "
            "ON l.valid_from < d.day + INTERVAL '1 day' AND (l.valid_to IS NULL OR l.valid_to > d.day) "
            "GROUP BY d.day, l.level ORDER BY d.day, l.level"
        )

    def promotion_targets(self, n: int = 20) -> pd.DataFrame:
        """Free users to offer a subscription, most active first, next to the users who upgraded before.

        Activity is plays per day over the user's current free period. ``upgraders_below`` is the share (0 to 1) of
        past upgrades whose user was less active in the free period before upgrading than this user is now: a user
        above most past upgraders is a likely convert. ``upgraders`` is how many past upgrades the share is of (0,
        and the share null, where there were none): with a handful, it is a rough guide. Free periods shorter than
        ``MIN_FREE_DAYS`` are left out on both sides: a user free for an hour is too new to judge, and a free spell
        of minutes between two paid ones is a billing blip, not an upgrade to learn from.
        """
        out = _ints(self.q(self.promotion_targets_sql(n)), "plays", "sessions", "upgraders")
        for c in ("days_free", "plays_per_day", "upgraders_below"):
            out[c] = pd.to_numeric(out[c]).astype(float)
        return out

    def promotion_targets_sql(self, n: int = 20) -> str:
        ul, sp, users = self._t("user_levels"), self._t("songplays"), self._t("users")
        end = f"(SELECT MAX(start_time) FROM {sp})"
        periods = (
            "SELECT l.user_id, l.level, l.valid_from, l.valid_to, "
            "LEAD(l.level) OVER (PARTITION BY l.user_id ORDER BY l.valid_from) AS next_level "
            f"FROM {ul} l"
        )
        activity = (
            "SELECT f.user_id, f.valid_from, f.valid_to, f.next_level, COUNT(p.songplay_id) AS plays, "
            "COUNT(DISTINCT p.session_id) AS sessions, "
            f"(EXTRACT(EPOCH FROM COALESCE(f.valid_to, {end})) - EXTRACT(EPOCH FROM f.valid_from)) / 86400.0 AS days "
            f"FROM ({periods}) f LEFT JOIN {sp} p ON p.user_id = f.user_id AND p.start_time >= f.valid_from "
            "AND (f.valid_to IS NULL OR p.start_time < f.valid_to) "
            "WHERE f.level = 'free' GROUP BY f.user_id, f.valid_from, f.valid_to, f.next_level"
        )
        return (
            f"WITH a AS ({activity}), "
            "upgraded AS (SELECT plays / days AS per_day FROM a "
            f"WHERE next_level = 'paid' AND days >= {MIN_FREE_DAYS}), "
            "candidates AS (SELECT user_id, plays, sessions, days, plays / days AS per_day FROM a "
            f"WHERE valid_to IS NULL AND days >= {MIN_FREE_DAYS}), "
            "below AS (SELECT c.user_id, COUNT(g.per_day) AS n FROM candidates c "
            "LEFT JOIN upgraded g ON g.per_day < c.per_day GROUP BY c.user_id) "
            "SELECT c.user_id, u.first_name, u.last_name, c.plays, c.sessions, c.days AS days_free, "
            "c.per_day AS plays_per_day, CAST(b.n AS DOUBLE PRECISION) / NULLIF(n.n, 0) AS upgraders_below, "
            "n.n AS upgraders "
            f"FROM candidates c JOIN {users} u ON u.user_id = c.user_id JOIN below b ON b.user_id = c.user_id "
            "CROSS JOIN (SELECT COUNT(*) AS n FROM upgraded) n "
            f"ORDER BY plays_per_day DESC, c.user_id LIMIT {int(n)}"
        )

    # ------------------------------------------------------------------------------------ trends

    def weekly_plays(self, by: str = "artist", n: int = 5) -> pd.DataFrame:
        """Plays per ISO week (the Monday it starts) of the ``n`` most played songs or artists overall."""
        return _ints(self.q(self.weekly_plays_sql(by, n)), "plays")

    def weekly_plays_sql(self, by: str = "artist", n: int = 5) -> str:
        key = self._key(by)
        sp = self._t("songplays")
        top = (
            f"SELECT {key} FROM {sp} WHERE song_title IS NOT NULL "
            f"GROUP BY {key} ORDER BY COUNT(*) DESC, {key} LIMIT {int(n)}"
        )
        cols = ", ".join(f"p.{c}" for c in key.split(", "))
        match = " AND ".join(f"t.{c} = p.{c}" for c in key.split(", "))
        return (
            f"SELECT DATE_TRUNC('week', p.start_time) AS week, {cols}, COUNT(*) AS plays "
            f"FROM {sp} p JOIN ({top}) t ON {match} GROUP BY DATE_TRUNC('week', p.start_time), {cols} "
            f"ORDER BY week, plays DESC, {cols}"
        )

    def movers(self, by: str = "artist", n: int = 5) -> pd.DataFrame:
        """Songs or artists growing and falling: plays in the last 7 days of data against the 7 days before.

        Positive ``change`` is growing. Only those with at least 3 plays in one of the two weeks are ranked, so
        one play more is not "growing 100%".
        """
        return _ints(self.q(self.movers_sql(by, n)), "last_week", "week_before", "change")

    def movers_sql(self, by: str = "artist", n: int = 5) -> str:
        key = self._key(by)
        sp = self._t("songplays")
        end = f"(SELECT MAX(start_time) FROM {sp})"
        last = f"p.start_time > {end} - INTERVAL '7 days'"
        before = f"p.start_time > {end} - INTERVAL '14 days' AND p.start_time <= {end} - INTERVAL '7 days'"
        cols = ", ".join(f"p.{c}" for c in key.split(", "))
        counts = (
            f"SELECT {cols}, SUM(CASE WHEN {last} THEN 1 ELSE 0 END) AS last_week, "
            f"SUM(CASE WHEN {before} THEN 1 ELSE 0 END) AS week_before FROM {sp} p "
            f"WHERE p.song_title IS NOT NULL AND p.start_time > {end} - INTERVAL '14 days' GROUP BY {cols}"
        )
        ranked = (
            f"SELECT c.*, last_week - week_before AS change FROM ({counts}) c WHERE last_week >= 3 OR week_before >= 3"
        )
        up = (
            f"SELECT r.*, 'growing' AS direction FROM ({ranked}) r WHERE change > 0 "
            f"ORDER BY change DESC, {key} LIMIT {int(n)}"
        )
        down = (
            f"SELECT r.*, 'falling' AS direction FROM ({ranked}) r WHERE change < 0 "
            f"ORDER BY change, {key} LIMIT {int(n)}"
        )
        return (
            f"SELECT * FROM (SELECT * FROM ({up}) g UNION ALL SELECT * FROM ({down}) f) m "
            f"ORDER BY direction DESC, ABS(change) DESC, {key}"
        )

    @staticmethod
    def _key(by: str) -> str:
        if by == "artist":
            return "artist_name"
        if by == "song":
            return "song_title, artist_name"
        raise ValueError(f"by must be 'artist' or 'song', not {by!r}")

    # ---------------------------------------------------------------------------------- playlists

    def _sessions_of_songs(self) -> str:
        """Each (user, session) once per song played in it: a session is one user's ``session_id``."""
        return (
            f"SELECT DISTINCT user_id, session_id, song_title, artist_name FROM {self._t('songplays')} "
            "WHERE song_title IS NOT NULL AND artist_name IS NOT NULL"
        )

    def _all_sessions(self) -> str:
        return f"SELECT COUNT(*) AS n FROM (SELECT DISTINCT user_id, session_id FROM {self._t('songplays')}) z"

    def co_play_seeds(self, n: int = 3, min_sessions: int = 10, max_share: float = MAX_SEED_SHARE) -> pd.DataFrame:
        """Songs played in the most sessions, at least ``min_sessions`` and under ``max_share`` of all sessions:
        seeds for ``played_with`` with enough sessions for an association to show, and room for one to."""
        return _ints(self.q(self.co_play_seeds_sql(n, min_sessions, max_share)), "sessions")

    def co_play_seeds_sql(self, n: int = 3, min_sessions: int = 10, max_share: float = MAX_SEED_SHARE) -> str:
        return (
            "SELECT s.song_title AS title, s.artist_name AS artist, COUNT(*) AS sessions "
            f"FROM ({self._sessions_of_songs()}) s CROSS JOIN ({self._all_sessions()}) e "
            "GROUP BY s.song_title, s.artist_name, e.n "
            f"HAVING COUNT(*) >= {int(min_sessions)} AND COUNT(*) < {float(max_share)!r} * e.n "
            f"ORDER BY sessions DESC, title, artist LIMIT {int(n)}"
        )

    def played_with(
        self,
        title: str,
        artist: str,
        n: int = 10,
        min_together: int = MIN_TOGETHER,
        min_song_sessions: int = MIN_SONG_SESSIONS,
    ) -> pd.DataFrame:
        """Songs played in the same session as (``title``, ``artist``) more often than their popularity
        predicts: a first step to playlists.

        ``lift`` = P(song | session has the seed) / P(song): how many times more often the song is in a seed's
        session than in any session (1 is what popularity alone predicts). ``expected`` is how many sessions would
        hold both if the two were unrelated, beside ``together``, how many do. Only songs in at least
        ``min_together`` of the seed's sessions and ``min_song_sessions`` sessions in all are ranked; with fewer,
        lift is noise. ``seed_sessions`` counts the seed's sessions, ``song_sessions`` the song's, ``all_sessions``
        all. An empty frame means the data is too thin for an answer.
        """
        out = _ints(
            self.q(self.played_with_sql(title, artist, n, min_together, min_song_sessions)),
            "together",
            "seed_sessions",
            "song_sessions",
            "all_sessions",
        )
        for c in ("expected", "lift"):
            out[c] = pd.to_numeric(out[c]).astype(float)
        return out

    def played_with_sql(
        self,
        title: str,
        artist: str,
        n: int = 10,
        min_together: int = MIN_TOGETHER,
        min_song_sessions: int = MIN_SONG_SESSIONS,
    ) -> str:
        t, a = self.dest.dialect.literal(title), self.dest.dialect.literal(artist)
        # The sessions' songs once, as a common table expression, not three times (a DISTINCT over every play).
        seed = f'SELECT user_id, session_id FROM "s" WHERE song_title = {t} AND artist_name = {a}'
        together = (
            'SELECT o.song_title, o.artist_name, COUNT(*) AS together FROM "s" o '
            f"JOIN ({seed}) k ON k.user_id = o.user_id AND k.session_id = o.session_id "
            f"WHERE NOT (o.song_title = {t} AND o.artist_name = {a}) GROUP BY o.song_title, o.artist_name"
        )
        popular = 'SELECT song_title, artist_name, COUNT(*) AS song_sessions FROM "s" GROUP BY song_title, artist_name'
        expected = "CAST(k.n AS DOUBLE PRECISION) * p.song_sessions / e.n"
        return (
            f'WITH "s" AS ({self._sessions_of_songs()}) '
            "SELECT g.song_title AS title, g.artist_name AS artist, g.together, "
            f"{expected} AS expected, k.n AS seed_sessions, p.song_sessions, e.n AS all_sessions, "
            f"CAST(g.together AS DOUBLE PRECISION) / ({expected}) AS lift "
            f"FROM ({together}) g JOIN ({popular}) p ON p.song_title = g.song_title AND p.artist_name = g.artist_name "
            f"CROSS JOIN (SELECT COUNT(*) AS n FROM ({seed}) q) k CROSS JOIN ({self._all_sessions()}) e "
            f"WHERE g.together >= {int(min_together)} AND p.song_sessions >= {int(min_song_sessions)} "
            f"ORDER BY lift DESC, g.together DESC, title, artist LIMIT {int(n)}"
        )
