"""Notebooks execute against the sample, the analytics answer correctly, and the report renders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pipeline.analytics import Analytics, browser_and_os
from pipeline.load.duckdb import DuckDBDestination

from .helpers import REFERENCE, ROOT, cli, run_json, write_config

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def warehouse(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("wh")
    config = write_config(tmp, sample_dir / "song_data", sample_dir / "log_data")
    run_json(config)
    return tmp / "wh.duckdb", config


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
    assert len(a.top_songs()) == 1


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
    assert 'data-charts-total="7"' in dom
    assert 'data-charts-rendered="7"' in dom
