"""Runs and readers side by side: a removed lock file, a shared staging path, an analyst's open connection."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd

from tests.support.helpers import assert_same_tables, cli, history, paused_run, read_tables, write_config


def _clean(sample_dir: Path, tmp: Path) -> dict[str, pd.DataFrame]:
    tmp.mkdir()
    assert (
        cli("run", "-q", "-c", str(write_config(tmp, sample_dir / "song_data", sample_dir / "log_data"))).returncode
        == 0
    )
    return read_tables(tmp / "wh.duckdb")


def test_with_its_lock_file_removed_a_run_and_a_second_one_never_both_load(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    go_on = tmp_path / "go-on"
    first = paused_run(config, "staged", resume_when=go_on)
    shutil.rmtree(tmp_path / "build")  # `make clean` or `rm -rf build/` while it runs: the lock file goes
    second = cli("run", "-q", "-c", str(config))
    assert second.returncode == 0, second.stderr
    go_on.touch()
    _, err = first.communicate(timeout=120)
    assert first.returncode == 75, err
    assert "this run loads nothing, so two runs never both load" in err
    statuses = [r["status"] for r in history(config)]
    assert statuses == ["succeeded", "failed"]
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), _clean(sample_dir, tmp_path / "clean"))


def test_two_warehouses_sharing_a_staging_path_never_remove_each_others_live_folders(
    sample_dir: Path, tmp_path: Path
) -> None:
    staging = {"path": str(tmp_path / "shared-staging")}
    prod, test = tmp_path / "prod", tmp_path / "test"
    prod.mkdir()
    test.mkdir()
    prod_config = write_config(prod, sample_dir / "song_data", sample_dir / "log_data", staging=staging)
    test_config = write_config(test, sample_dir / "song_data", sample_dir / "log_data", staging=staging)
    go_on = tmp_path / "go-on"
    live = paused_run(prod_config, "staged", resume_when=go_on)
    [folder] = list((tmp_path / "shared-staging").iterdir())
    assert cli("run", "-q", "-c", str(test_config)).returncode == 0
    assert folder.exists(), "the other warehouse's run removed a live run's staging folder"
    go_on.touch()
    _, err = live.communicate(timeout=120)
    assert live.returncode == 0, err
    assert_same_tables(read_tables(prod / "wh.duckdb"), read_tables(test / "wh.duckdb"))


def test_an_analysts_connection_never_blocks_the_night_and_one_on_the_warehouse_itself_is_named(
    sample_copy: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    days = sorted((sample_copy / "log_data").rglob("*.json"))
    late = days[-1].read_bytes()
    days[-1].unlink()
    assert cli("run", "-q", "-c", str(config)).returncode == 0
    copy = tmp_path / "wh.read.duckdb"
    # The analyst's query one-liner, on the read copy the run published: it stays open through the next night.
    analyst = duckdb.connect(str(copy), read_only=True)
    plays_before = analyst.execute("SELECT COUNT(*) FROM songplays").fetchone()
    days[-1].write_bytes(late)
    night = cli("run", "-q", "-c", str(config))
    assert night.returncode == 0, night.stderr
    assert analyst.execute("SELECT COUNT(*) FROM songplays").fetchone() == plays_before  # a consistent snapshot
    analyst.close()
    fresh = duckdb.connect(str(copy), read_only=True)
    assert fresh.execute("SELECT COUNT(*) FROM songplays").fetchone() == (6820,)
    fresh.close()
    # The report reads the copy too, even while someone holds the warehouse file itself.
    holder = duckdb.connect(str(tmp_path / "wh.duckdb"))
    try:
        report = cli("report", "-c", str(config), "--out", str(tmp_path / "report.html"))
        assert report.returncode == 0, report.stderr
        days[0].write_bytes(days[0].read_bytes() + b"\n")
        blocked = cli("run", "-q", "-c", str(config))
    finally:
        holder.close()
    assert blocked.returncode == 75, blocked.stderr
    assert f"(PID {os.getpid()})" in blocked.stderr and "try later" in blocked.stderr
