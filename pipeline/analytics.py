"""The analysts' questions, answered from the warehouse: the same SQL on DuckDB and Redshift.

Each method returns a small frame, for notebooks, the HTML report, or a dashboard. Browsers and operating
systems come from ``ua-parser`` (the maintained port of the uap-core rules), applied to the few distinct
user agents rather than to every play.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from .load.base import Destination


@lru_cache(maxsize=4096)
def browser_and_os(user_agent: str | None) -> tuple[str, str]:
    if not user_agent:
        return ("unknown", "unknown")
    from ua_parser import parse

    result = parse(user_agent.strip('"'))
    browser = result.user_agent.family if result.user_agent else "Other"
    os_family = result.os.family if result.os else "Other"
    return (browser, os_family)


class Analytics:
    def __init__(self, dest: Destination):
        self.dest = dest

    def _t(self, name: str) -> str:
        return self.dest.dialect.qualified(self.dest.schema, name)

    def q(self, sql: str) -> pd.DataFrame:
        return self.dest.query(sql)

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

    def top_songs(self, n: int = 10) -> pd.DataFrame:
        """Most played songs, among plays matched to the catalogue."""
        return self.q(
            f"SELECT s.title, a.name AS artist, COUNT(*) AS plays FROM {self._t('songplays')} p "
            f"JOIN {self._t('songs')} s ON s.song_id = p.song_id "
            f"JOIN {self._t('artists')} a ON a.artist_id = p.artist_id "
            f"GROUP BY s.title, a.name ORDER BY plays DESC, s.title LIMIT {int(n)}"
        )

    def top_artists(self, n: int = 10) -> pd.DataFrame:
        return self.q(
            f"SELECT a.name AS artist, COUNT(*) AS plays FROM {self._t('songplays')} p "
            f"JOIN {self._t('artists')} a ON a.artist_id = p.artist_id "
            f"GROUP BY a.name ORDER BY plays DESC, a.name LIMIT {int(n)}"
        )

    def plays_by_hour(self) -> pd.DataFrame:
        return self.q(
            f"SELECT t.hour, COUNT(*) AS plays FROM {self._t('songplays')} p "
            f"JOIN {self._t('time')} t ON t.start_time = p.start_time GROUP BY t.hour ORDER BY t.hour"
        )

    def plays_by_weekday(self) -> pd.DataFrame:
        """Weekday is ISO: 1 = Monday ... 7 = Sunday."""
        return self.q(
            f"SELECT t.weekday, COUNT(*) AS plays FROM {self._t('songplays')} p "
            f"JOIN {self._t('time')} t ON t.start_time = p.start_time GROUP BY t.weekday ORDER BY t.weekday"
        )

    def levels(self) -> pd.DataFrame:
        """Users by current level, and plays by the level at the time of the play."""
        users = self.q(f"SELECT level, COUNT(*) AS users FROM {self._t('users')} GROUP BY level")
        plays = self.q(f"SELECT level, COUNT(*) AS plays FROM {self._t('songplays')} GROUP BY level")
        return users.merge(plays, on="level", how="outer").fillna(0).sort_values("level").reset_index(drop=True)

    def level_changes(self) -> pd.DataFrame:
        """Every upgrade and downgrade seen in the plays: who, when, from and to which level."""
        return self.q(
            "SELECT user_id, start_time AS changed_at, prev_level AS from_level, level AS to_level FROM ("
            "SELECT user_id, start_time, level, "
            "LAG(level) OVER (PARTITION BY user_id ORDER BY start_time, songplay_id) AS prev_level "
            f"FROM {self._t('songplays')}) x "
            "WHERE prev_level IS NOT NULL AND prev_level <> level ORDER BY changed_at, user_id"
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
