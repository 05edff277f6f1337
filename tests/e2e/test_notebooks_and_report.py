"""Notebooks execute against the sample, the analytics answer correctly, and the report renders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import duckdb
import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from pipeline.analytics.queries import (
    MATCH_REASONS,
    MATCHED,
    NO_TITLE,
    OTHER_ARTIST,
    OTHER_LENGTH,
    QUESTIONS,
    Analytics,
    browser_and_os,
)
from pipeline.load.duckdb import DuckDBDestination
from tests.support.helpers import REFERENCE, ROOT, cli

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def warehouse(clean: dict[str, pd.DataFrame], clean_warehouse: tuple[Path, Path]) -> tuple[Path, Path]:
    """The sample's clean warehouse, once its reference tables are read."""
    return clean_warehouse


def test_notebooks_are_committed_without_outputs() -> None:
    assert len(NOTEBOOKS) == 3
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has stale outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_sample(
    path: Path, sample_dir: Path, warehouse: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = warehouse
    monkeypatch.setenv("SPARKIFY__SOURCE__SONG_DATA", str(sample_dir / "song_data"))
    monkeypatch.setenv("SPARKIFY__SOURCE__LOG_DATA", str(sample_dir / "log_data"))
    monkeypatch.setenv("SPARKIFY__WAREHOUSE__DUCKDB__PATH", str(db))
    monkeypatch.setenv("SPARKIFY__DEMO__GENERATE_IF_EMPTY", "false")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    if path.name.startswith("02"):
        # The walkthrough ends with the star frames: SPEC.md's reference figures.
        for name, rows in REFERENCE.items():
            assert f"{name}" in text and f"{rows}" in text
        assert "106 periods, 97 current" in text
        assert "346 text fields repaired" in text and "Représente" in text
    if path.name.startswith("03"):
        assert "1 of 6,820 plays matched" in text
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if not path.name.startswith("02"):
        assert images >= 2, "the notebook draws its charts"


def test_analytics_answers_on_the_sample(warehouse: tuple[Path, Path]) -> None:
    db, _ = warehouse
    a = Analytics(DuckDBDestination(str(db), "main"))
    h = a.headline()
    assert (h["plays"], h["matched_plays"], h["users"], h["songs"], h["artists"]) == (6820, 1, 97, 71, 69)
    assert a.plays_by_hour()["plays"].sum() == 6820
    assert a.plays_by_weekday()["weekday"].between(1, 7).all()
    assert a.plays_by_agent()["plays"].sum() == 6820
    assert a.level_changes()["user_id"].nunique() == 8
    levels = a.levels().set_index("level")
    assert levels["users"].sum() == 97 and levels["plays"].sum() == 6820


def _tables(db: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            t: con.execute(f'SELECT * FROM "{t}"').df()
            for t in ("songplays", "user_levels", "users", "_sparkify_song_records")
        }


def test_match_reasons_agree_with_the_tables(warehouse: tuple[Path, Path]) -> None:
    db, _ = warehouse
    a = Analytics(DuckDBDestination(str(db), "main"))
    t = _tables(db)
    plays, records = t["songplays"], t["_sparkify_song_records"]
    # The same classification, written with pandas from the tables the SQL reads.
    titles = set(records["title"])
    pairs = set(zip(records["title"], records["artist_name"], strict=True))
    unmatched = plays[plays["song_id"].isna()]
    expected = {
        MATCHED: int(plays["song_id"].notna().sum()),
        NO_TITLE: int((~unmatched["song_title"].isin(titles)).sum()),
        OTHER_ARTIST: sum(
            t in titles and (t, ar) not in pairs
            for t, ar in zip(unmatched["song_title"], unmatched["artist_name"], strict=True)
        ),
    }
    expected[OTHER_LENGTH] = len(plays) - sum(expected.values())
    got = a.match_breakdown().set_index("reason")["plays"].to_dict()
    assert {k: v for k, v in expected.items() if v} == got
    assert got[MATCHED] == 1 and sum(got.values()) == 6820
    top = a.top_unmatched(5)
    assert len(top) == 5 and set(top["reason"]) <= set(MATCH_REASONS) - {MATCHED}
    assert top["plays"].is_monotonic_decreasing


def test_most_played_uses_every_play_and_marks_catalogue_matches(warehouse: tuple[Path, Path]) -> None:
    db, _ = warehouse
    a = Analytics(DuckDBDestination(str(db), "main"))
    plays = _tables(db)["songplays"]
    counts = plays.groupby(["song_title", "artist_name"]).size().sort_values(ascending=False)
    top = a.top_songs(10)
    assert len(top) == 10
    assert top["plays"].tolist() == counts.head(10).tolist()
    assert (top["title"].iloc[0], top["artist"].iloc[0]) == counts.index[0]
    matched = plays.loc[plays["song_id"].notna(), ["song_title", "artist_name"]].iloc[0]
    marked = a.top_songs(len(counts)).set_index(["title", "artist"])["in_catalogue"]
    assert marked[(matched["song_title"], matched["artist_name"])] and marked.sum() == 1
    artists = a.top_artists(5)
    assert artists["plays"].tolist() == plays.groupby("artist_name").size().nlargest(5).tolist()


def test_level_questions_read_the_level_history(warehouse: tuple[Path, Path]) -> None:
    db, _ = warehouse
    a = Analytics(DuckDBDestination(str(db), "main"))
    t = _tables(db)
    levels, users = t["user_levels"], t["users"]
    changes = a.level_changes()
    assert len(changes) == len(levels) - levels["user_id"].nunique() == 9
    per_day = a.users_by_level_per_day()
    day = pd.Timestamp("2018-11-15")
    alive = levels[
        (levels["valid_from"] < day + pd.Timedelta(days=1)) & (levels["valid_to"].isna() | (levels["valid_to"] > day))
    ]
    got = per_day[pd.to_datetime(per_day["day"]) == day].set_index("level")["users"].to_dict()
    assert got == alive.groupby("level")["user_id"].nunique().to_dict()

    targets = a.promotion_targets(50)
    free_now = set(users.loc[users["level"] == "free", "user_id"])
    assert len(targets) and set(targets["user_id"]) <= free_now
    assert targets["plays_per_day"].is_monotonic_decreasing
    assert targets["upgraders_below"].between(0, 1).all()
    # The first target's plays: their plays since their current free period began.
    first = targets.iloc[0]
    since = levels[(levels["user_id"] == first["user_id"]) & levels["valid_to"].isna()]["valid_from"].iloc[0]
    mine = t["songplays"][(t["songplays"]["user_id"] == first["user_id"]) & (t["songplays"]["start_time"] >= since)]
    assert first["plays"] == len(mine)


def test_trends_and_co_played_songs(warehouse: tuple[Path, Path]) -> None:
    db, _ = warehouse
    a = Analytics(DuckDBDestination(str(db), "main"))
    plays = _tables(db)["songplays"]
    weekly = a.weekly_plays("artist", 3)
    top3 = plays.groupby("artist_name").size().nlargest(3)
    assert weekly.groupby("artist_name")["plays"].sum().sort_values(ascending=False).tolist() == top3.tolist()
    movers = a.movers("song", 5)
    assert set(movers["direction"]) <= {"growing", "falling"}
    assert ((movers["change"] > 0) == (movers["direction"] == "growing")).all()
    assert (movers["change"] == movers["last_week"] - movers["week_before"]).all()

    title, artist = "You're The One", "Dwight Yoakam"
    together = a.played_with(title, artist, 5)
    seeds = plays[(plays["song_title"] == title) & (plays["artist_name"] == artist)][["user_id", "session_id"]]
    same = plays.merge(seeds.drop_duplicates(), on=["user_id", "session_id"])
    same = same[~((same["song_title"] == title) & (same["artist_name"] == artist))]
    expected = same.groupby(["song_title", "artist_name"])[["user_id", "session_id"]].apply(
        lambda g: len(g.drop_duplicates())
    )
    assert together["sessions"].iloc[0] == expected.max()
    assert not ((together["title"] == title) & (together["artist"] == artist)).any()


def test_user_agents_are_parsed_by_the_maintained_parser() -> None:
    ua = "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0"
    assert browser_and_os(ua) == ("Firefox", "Windows")
    assert browser_and_os(f'"{ua}"') == ("Firefox", "Windows")  # the sample quotes some agents
    assert browser_and_os(None) == ("unknown", "unknown")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_its_charts_in_headless_chromium(warehouse: tuple[Path, Path], tmp_path: Path) -> None:
    _, config = warehouse
    out = tmp_path / "report.html"
    proc = cli("report", "-c", str(config), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "self-contained: nothing is fetched"
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                out.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    charts = html.count("<section class='chart'>")
    assert charts >= 11, "match reasons, songs, artists, weekly trend, levels per day, levels (2), hours, days, agents"
    assert f'data-charts-total="{charts}"' in dom
    assert f'data-charts-rendered="{charts}"' in dom
    for heading in ("Why plays match a song, or not", "Paying and free users per day", "Free users to offer"):
        assert heading in html


def test_every_question_gives_its_sql_to_reuse(warehouse: tuple[Path, Path]) -> None:
    db, _ = warehouse
    a = Analytics(DuckDBDestination(str(db), "main"))
    text = a.sql("top_songs", n=3)
    with duckdb.connect(str(db), read_only=True) as con:
        direct = con.execute(text).df()
    assert direct["plays"].tolist() == a.top_songs(3)["plays"].tolist()
    for question in QUESTIONS:
        kwargs = {"title": "Undo", "artist": "Björk"} if question == "played_with" else {}
        assert a.sql(question, **kwargs).lstrip().upper().startswith(("SELECT", "WITH"))
    with pytest.raises(ValueError, match="unknown question 'top_genres'"):
        a.sql("top_genres")
