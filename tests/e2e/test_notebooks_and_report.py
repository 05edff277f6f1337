"""Notebooks execute against the sample, the analytics answer correctly, and the report renders."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from pipeline.analytics.queries import (
    MATCH_REASONS,
    MATCHED,
    MIN_SONG_SESSIONS,
    MIN_TOGETHER,
    NO_TITLE,
    OTHER_ARTIST,
    OTHER_LENGTH,
    QUESTIONS,
    Analytics,
    browser_and_os,
)
from pipeline.load.duckdb import DuckDBDestination
from tests.support.helpers import REFERENCE, ROOT, cli, run_json, write_config

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
    if not path.name.startswith("03"):
        # A sample of the files, capped: the real sample is under the caps, so all of it.
        assert "reading 71 of 71 song files and 30 of 30 log files" in text
    if path.name.startswith("03"):
        assert "1 of 6,820 plays matched" in text and "plays from 01 Nov 2018 to 30 Nov 2018 (UTC)" in text
        # The report's questions, each with its frame: promotion targets, trends, playlists, the match breakdown.
        for column in ("upgraders_below", "direction", "lift", "reason"):
            assert column in text, f"notebook 03 shows no frame with {column}"
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
    per_day = a.known_users_by_level_per_day()
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
    lifts = _lift(plays, title, artist)
    assert len(lifts) >= 5, "the most played song has co-played songs above the minimum support"
    assert together["lift"].tolist() == pytest.approx(sorted(lifts.values(), reverse=True)[:5])
    assert not ((together["title"] == title) & (together["artist"] == artist)).any()
    assert (together["together"] >= MIN_TOGETHER).all()
    assert a.played_with(title, artist, 5, min_together=1000).empty, "too thin: no answer rather than noise"


def test_user_agents_are_parsed_by_the_maintained_parser() -> None:
    ua = "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0"
    assert browser_and_os(ua) == ("Firefox", "Windows")
    assert browser_and_os(f'"{ua}"') == ("Firefox", "Windows")  # the sample quotes some agents
    assert browser_and_os(None) == ("unknown", "unknown")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Sections(HTMLParser):
    """The report as a browser laid it out: each section's attributes, its text, its table rows; the body's
    attributes; the contents' links."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, Any]] = []
        self.body: dict[str, str] = {}
        self.links: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        elif tag == "section":
            self.sections.append({**a, "text": [], "rows": []})
        elif tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
        elif tag == "tr" and self.sections:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.sections[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self.sections:
            self.sections[-1]["text"].append(data)


def _rendered(report: Path) -> _Sections:
    """The report's DOM after headless Chromium has laid it out."""
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
                report.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    parsed = _Sections()
    parsed.feed(dom)
    return parsed


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A warehouse of the generated demo dataset, as `make run` loads it on a fresh clone, and its config."""
    from pipeline.core.config import DemoConfig
    from pipeline.demo.dataset import DEMO_CATALOGUE_SHARE, DEMO_SKEW
    from pipeline.demo.generate import generate

    root = tmp_path_factory.mktemp("generated")
    demo = DemoConfig()
    generate(
        root / "src" / "song_data",
        root / "src" / "log_data",
        songs=demo.songs,
        events=demo.events,
        seed=demo.seed,
        catalogue_share=DEMO_CATALOGUE_SHARE,
        skew=DEMO_SKEW,
    )
    config = write_config(root, root / "src" / "song_data", root / "src" / "log_data")
    run_json(config)
    return root / "wh.duckdb", config


def _figures(section: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(json.loads(section["data-figures"]))


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as a reader compares them: times as ISO text to the second, numbers as floats to 9 places."""
    out = frame.reset_index(drop=True).copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%S")
        elif isinstance(out[c].iloc[0] if len(out) else None, str) and re.match(r"\d{4}-\d\d-\d\dT", out[c].iloc[0]):
            out[c] = out[c].str.slice(0, 19)
        elif out[c].isna().all() or pd.api.types.is_numeric_dtype(out[c]):
            out[c] = pd.to_numeric(out[c]).astype(float).round(9)
    return out


def _promotion_shares(t: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Each free user's share of past upgraders less active than they are now, from the tables, with pandas: free
    periods of a day or more on both sides, plays per day of the period."""
    levels, plays = t["user_levels"].sort_values(["user_id", "valid_from"]), t["songplays"]
    end = plays["start_time"].max()
    levels = levels.assign(next_level=levels.groupby("user_id")["level"].shift(-1))
    free = levels[levels["level"] == "free"]
    free = free.assign(days=((free["valid_to"].fillna(end) - free["valid_from"]).dt.total_seconds() / 86400))
    free = free[free["days"] >= 1]

    def per_day(p: pd.Series) -> float:
        mine = plays[(plays["user_id"] == p["user_id"]) & (plays["start_time"] >= p["valid_from"])]
        if pd.notna(p["valid_to"]):
            mine = mine[mine["start_time"] < p["valid_to"]]
        return len(mine) / p["days"]

    upgraded = [per_day(p) for _, p in free[free["next_level"] == "paid"].iterrows()]
    now = {str(p["user_id"]): per_day(p) for _, p in free[free["valid_to"].isna()].iterrows()}
    return {u: sum(g < v for g in upgraded) / len(upgraded) if upgraded else float("nan") for u, v in now.items()}


def _lift(plays: pd.DataFrame, title: str, artist: str) -> dict[tuple[str, str], float]:
    """Lift of every song played with the seed in enough sessions, with pandas: together * all / (seed's * song's)."""
    p = plays.dropna(subset=["song_title", "artist_name"])
    sessions = p.groupby(["song_title", "artist_name"])[["user_id", "session_id"]].apply(
        lambda g: set(zip(g["user_id"], g["session_id"], strict=True))
    )
    everyone = len(plays[["user_id", "session_id"]].drop_duplicates())
    seed = sessions[(title, artist)]
    return {
        key: len(seed & mine) * everyone / (len(seed) * len(mine))
        for key, mine in sessions.items()
        if key != (title, artist) and len(seed & mine) >= MIN_TOGETHER and len(mine) >= MIN_SONG_SESSIONS
    }


@pytest.mark.parametrize("data", ["sample", "generated"])
def test_the_report_shows_what_the_documented_queries_and_independent_sql_give(
    data: str, warehouse: tuple[Path, Path], generated: tuple[Path, Path], tmp_path: Path
) -> None:
    """Rendered in headless Chromium, on the real sample and on generated data: every chart laid out, every
    contents link leads somewhere, every documented question shown, with the figures its SQL gives when run on
    its own, and the active users, one seed's lift and the promotion shares as pandas finds them."""
    db, config = warehouse if data == "sample" else generated
    out = tmp_path / "report.html"
    proc = cli("report", "-c", str(config), "--out", str(out), env={"PYTHONWARNINGS": "error::FutureWarning"})
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    html_text = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html_text), "self-contained: nothing is fetched"
    page = _rendered(out)
    charts = html_text.count("class='chart'")
    assert charts >= 12, (
        "match reasons, songs, artists, weekly, active and known users, levels (2), hours, days, agents"
    )
    assert page.body["data-charts-total"] == page.body["data-charts-rendered"] == str(charts)
    ids = {s["id"] for s in page.sections}
    assert page.links and set(page.links) == ids, "the contents link every section, and only sections"

    t = _tables(db)
    plays = t["songplays"]
    first, last = plays["start_time"].min(), plays["start_time"].max()
    assert f"Plays from {first.day} {first:%b %Y} to {last.day} {last:%b %Y} (UTC)" in html_text

    shown = {s["data-question"]: s for s in page.sections if s.get("data-question")}
    assert set(QUESTIONS) <= set(shown), f"not in the report: {set(QUESTIONS) - set(shown)}"
    a = Analytics(DuckDBDestination(str(db), "main"))
    with duckdb.connect(str(db), read_only=True) as con:
        for question, section in shown.items():
            if question == "played_with":
                continue  # one section per seed: compared below, each
            figures = _figures(section)
            direct = con.execute(a.sql(question, **json.loads(section["data-params"]))).df()
            pd.testing.assert_frame_equal(
                _comparable(figures), _comparable(direct[figures.columns]), obj=f"{question} in the report"
            )
        together = [s for s in page.sections if s.get("data-question") == "played_with"]
        assert together, "a section per seed"
        for section in together:
            direct = con.execute(a.sql("played_with", **json.loads(section["data-params"]))).df()
            pd.testing.assert_frame_equal(_comparable(_figures(section)), _comparable(direct), obj="played_with")

    if data == "generated":  # shaped as the demo: a first report shows a matched warehouse
        assert a.headline()["match_rate"] > 0.5 and a.top_songs(15)["in_catalogue"].sum() >= 8

    # Active users per day: users with a play that day, by the level of the play.
    active = _figures(shown["active_users_per_day"])
    expected = plays.assign(day=plays["start_time"].dt.floor("D")).groupby(["day", "level"])["user_id"].nunique()
    got = active.assign(day=pd.to_datetime(active["day"])).set_index(["day", "level"])["users"]
    assert got.to_dict() == expected.to_dict()
    # The note names the last whole day's figures; a day the data covers in part (from more than an hour into it,
    # or to more than an hour before its end) is left out of the chart, and said to be.
    note = "".join(shown["active_users_per_day"]["text"])
    whole_to = last.normalize() - pd.Timedelta(
        days=0 if last.normalize() + pd.Timedelta(days=1) - last <= pd.Timedelta(hours=1) else 1
    )
    on_last = expected.loc[whole_to]
    said = ", ".join(f"{n:,} {lv}" for lv, n in on_last.items())
    assert f"On {whole_to.day} {whole_to:%b %Y}: {said}." in note
    if whole_to < last.normalize():
        assert f"{last.day} {last:%b %Y} (the data ends at {last:%H:%M})" in note

    # One seed's lift, as pandas computes it, in the table the analyst reads.
    seed = together[0]
    params = json.loads(seed["data-params"])
    lifts = _lift(plays, params["title"], params["artist"])
    figures = _figures(seed)
    assert figures["lift"].tolist() == pytest.approx(sorted(lifts.values(), reverse=True)[:10]), "the top ten by lift"
    for title, artist, lift in zip(figures["title"], figures["artist"], figures["lift"], strict=True):
        assert lift == pytest.approx(lifts[(title, artist)])
    header, *rows = seed["rows"]
    assert header[-1] == "Lift" and [r[-1] for r in rows] == [f"{v:,.1f}×" for v in figures["lift"]]

    # The promotion shares, as pandas computes them, and as the table shows them.
    section = shown["promotion_targets"]
    targets = _figures(section)
    shares = _promotion_shares(t)
    assert set(targets["user_id"].astype(str)) <= set(shares)
    for user, share in zip(targets["user_id"], targets["upgraders_below"], strict=True):
        assert share == pytest.approx(shares[str(user)], nan_ok=True)
    header, *rows = section["rows"]
    column = header.index("Past upgraders less active")
    assert [r[column] for r in rows] == [f"{v:.0%}" for v in targets["upgraders_below"]]
    upgrades = int(targets["upgraders"].max())
    assert f"of only {upgrades:,} upgrade" in "".join(section["text"]) or upgrades >= 20
    assert not any("_" in h for h in header), f"headers for readers, not column names: {header}"


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
