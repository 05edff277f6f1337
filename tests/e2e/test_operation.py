"""What the on-call engineer relies on: the crontab's JSON Lines, no invented data on a typo, monitoring metrics,
staging folders cleaned up, and a terminal whose log lines do not land on the progress bar."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from pipeline.core.config import load_config
from pipeline.demo import dataset as demo_data
from tests.support.helpers import ROOT, cli, write_config


def test_run_json_is_one_line_per_run_so_the_crontab_log_is_json_lines(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    log = tmp_path / "runs.jsonl"
    for _ in range(2):
        proc = cli("run", "--json", "-q", "-c", str(config))
        assert proc.returncode == 0, proc.stderr
        with log.open("a") as fh:
            fh.write(proc.stdout)
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    assert [json.loads(line)["status"] for line in lines] == ["succeeded", "succeeded"]
    # Without --json, the text summary the README shows: songs first, then logs, whichever was listed first.
    text = cli("run", "-q", "-c", str(config)).stdout.splitlines()
    assert [line.split()[0] for line in text[1:3]] == ["song_data", "log_data"]
    assert "71 files already loaded" in text[1] and "30 files already loaded" in text[2]


def test_a_typo_in_a_source_path_is_an_error_not_invented_data(tmp_path: Path) -> None:
    # A config derived from config.yaml, with song_dta for song_data, pointing at the production warehouse.
    text = (ROOT / "config.yaml").read_text().replace("data/demo/song_data", str(tmp_path / "data" / "song_dta"))
    text = text.replace("data/demo/log_data", str(tmp_path / "data" / "log_data"))
    text = text.replace("build/", str(tmp_path / "build") + "/")
    (tmp_path / "data" / "log_data").mkdir(parents=True)
    config = tmp_path / "config.yaml"
    config.write_text(text)
    proc = cli("run", "-c", str(config))
    assert proc.returncode == 5, proc.stderr
    assert f"source error: {tmp_path / 'data' / 'song_dta'}: not found or not a folder" in proc.stderr
    assert not (tmp_path / "data" / "song_dta").exists(), "nothing was generated there"
    # An empty source folder is a warning and an empty run, never a reason to make data up.
    (tmp_path / "data" / "song_dta").mkdir()
    proc = cli("run", "--json", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "no data files under" in proc.stderr
    assert json.loads(proc.stdout)["rows_total"]["songs"] == 0
    assert not any((tmp_path / "data").rglob("*.json"))


def test_demo_data_is_generated_only_into_the_built_in_demo_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = tmp_path / "repo" / "data" / "demo"
    monkeypatch.setattr(demo_data, "DEMO_ROOT", demo)
    env = {"SPARKIFY__DEMO__SONGS": "20", "SPARKIFY__DEMO__EVENTS": "200"}
    elsewhere = load_config(None, {**env, "SPARKIFY__SOURCE__SONG_DATA": str(tmp_path / "x" / "song_data")})
    assert not demo_data.ensure_demo_data(elsewhere)
    default = load_config(
        None,
        {
            **env,
            "SPARKIFY__SOURCE__SONG_DATA": str(demo / "song_data"),
            "SPARKIFY__SOURCE__LOG_DATA": str(demo / "log_data"),
        },
    )
    assert demo_data.ensure_demo_data(default)
    assert len(list((demo / "song_data").rglob("*.json"))) == 20
    assert not demo_data.ensure_demo_data(default), "only into empty folders"


def _metrics(path: Path) -> dict[str, float]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_every_run_writes_prometheus_metrics_and_a_failure_keeps_the_last_success(
    sample_copy: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    before = time.time()
    assert cli("run", "-q", "-c", str(config)).returncode == 0
    prom = tmp_path / "build" / "sparkify.prom"
    first = _metrics(prom)
    assert first["sparkify_last_run_success"] == 1
    assert before <= first["sparkify_last_success_timestamp_seconds"] <= time.time()
    assert first['sparkify_table_rows{table="songplays"}'] == 6820
    assert first['sparkify_last_run_records_read{source="log_data"}'] == 8056
    assert {'sparkify_last_run_stage_seconds{stage="load"}', "sparkify_last_run_bytes_rejected_ratio"} <= set(first)

    new_day = sorted((sample_copy / "log_data").rglob("*.json"))[0].with_name("2018-11-31-events.json")
    new_day.write_bytes(b"\x00" * 500_000)  # a new day lost: exit 4
    assert cli("run", "-q", "-c", str(config)).returncode == 4
    second = _metrics(prom)
    assert second["sparkify_last_run_success"] == 0
    assert second["sparkify_last_run_timestamp_seconds"] > first["sparkify_last_run_timestamp_seconds"]
    assert second["sparkify_last_success_timestamp_seconds"] == first["sparkify_last_success_timestamp_seconds"]
    assert second['sparkify_table_rows{table="songplays"}'] == 6820
    assert second["sparkify_last_run_rejected_ratio"] > 0.01
    assert not [p.name for p in prom.parent.iterdir() if "prom." in p.name], "written by rename: no temporary left"


def test_killed_runs_staging_folders_are_removed_by_the_next_run_failed_ones_kept_for_a_while(
    sample_dir: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    staging = tmp_path / "staging"
    killed = cli("run", "-c", str(config), env={"SPARKIFY_FAULT_KILL_AT": "staged"})
    assert killed.returncode == -9
    [killed_run] = [p.name for p in staging.iterdir()]
    # The next run (here one that fails before its commit) removes the killed run's folder, keeps its own.
    failed = cli("run", "-c", str(config), env={"SPARKIFY_FAULT_FAIL_AT": "before-commit"})
    assert failed.returncode == 1
    [failed_run] = [p.name for p in staging.iterdir()]
    assert failed_run != killed_run
    assert f"staged files kept for inspection in {staging / failed_run}/" in failed.stderr

    assert cli("run", "-q", "-c", str(config)).returncode == 0
    assert [p.name for p in staging.iterdir()] == [failed_run], "a failed run's folder is kept for a while"
    later = cli("run", "-q", "-c", str(config), env={"SPARKIFY__STAGING__KEEP_FAILED_DAYS": "0"})
    assert later.returncode == 0
    assert list(staging.iterdir()) == []

    # staging.keep: a succeeded run's folder stays, through the next run's clean-up too.
    kept = {"SPARKIFY__STAGING__KEEP": "true"}
    assert cli("run", "-q", "--full-refresh", "-c", str(config), env=kept).returncode == 0
    [kept_run] = [p.name for p in staging.iterdir()]
    assert cli("run", "-q", "--full-refresh", "-c", str(config), env=kept).returncode == 0
    assert kept_run in [p.name for p in staging.iterdir()]


def test_a_damaged_metrics_file_neither_fails_the_run_nor_hides_its_outcome(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    prom = tmp_path / "build" / "sparkify.prom"
    prom.parent.mkdir(parents=True)
    prom.write_text('sparkify_last_success_timestamp_seconds not-a-number\nsparkify_table_rows{table="users"} x\n')
    # A failed run reads the previous file for the last success; the damage must not replace its error.
    proc = cli("run", "-q", "-c", str(config), env={"SPARKIFY_FAULT_FAIL_AT": "before-commit"})
    assert proc.returncode == 1, proc.stderr
    assert "InjectedFault: injected failure at before-commit" in proc.stderr and "ValueError" not in proc.stderr
    assert _metrics(prom)["sparkify_last_run_success"] == 0
    assert cli("run", "-q", "-c", str(config)).returncode == 0
    assert _metrics(prom)["sparkify_last_run_success"] == 1


def test_on_a_terminal_log_lines_do_not_land_on_the_progress_bar(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data", source={"batch_mb": 0.5})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKIFY__")}
    main, child = pty.openpty()
    # A terminal of 120 columns (a new pty has none, and tqdm then draws a bar of no width).
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "-c", str(config)],
        cwd=ROOT,
        env=env,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(60) == 0
    text = out.decode(errors="replace")
    assert "log data:" in text, "a progress bar was drawn"
    # Every log line, after whatever the terminal's carriage returns overwrite, starts with its time stamp.
    logged = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n") if " INFO " in line]
    assert sum("batch staged" in line for line in logged) >= 2, "log lines were written while the bar was shown"
    stamp = re.compile(r"^\x1b\[[0-9;]*[A-Za-z]|^\d{4}-\d{2}-\d{2} ")
    assert all(stamp.match(line) for line in logged), logged[:3]


def test_drop_schema_drops_every_table_the_pipeline_owns_and_says_so(sample_dir: Path, tmp_path: Path) -> None:
    import duckdb

    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    assert cli("run", "-q", "-c", str(config)).returncode == 0
    refused = cli("drop-schema", "-c", str(config))
    assert refused.returncode == 2 and "without --yes" in refused.stderr
    dropped = cli("drop-schema", "--yes", "-c", str(config))
    assert dropped.returncode == 0, dropped.stderr
    for words in ("the star tables", "the kept source records", "the ledger", "the run history"):
        assert words in dropped.stdout
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == []


def test_runs_and_check_on_a_warehouse_nothing_was_loaded_into_say_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "song_data", tmp_path / "log_data")
    # No warehouse at all: a read-only command says where it looked, and creates nothing there.
    for command in ("runs", "check", "report"):
        proc = cli(command, "-c", str(config))
        assert proc.returncode == 2, proc.stderr
        assert f"no warehouse at duckdb:{tmp_path / 'wh.duckdb'}" in proc.stderr
    assert not (tmp_path / "wh.duckdb").exists()
    # A warehouse file with no table yet.
    import duckdb

    duckdb.connect(str(tmp_path / "wh.duckdb")).close()
    runs = cli("runs", "-c", str(config))
    assert runs.returncode == 0, runs.stderr
    assert "no run recorded in duckdb:" in runs.stdout
    assert json.loads(cli("runs", "--json", "-c", str(config)).stdout) == []
    check = cli("check", "-c", str(config))
    assert check.returncode == 2
    assert "has no users, artists, songs, time, songplays, user_levels table" in check.stderr
    assert "Traceback" not in check.stderr and "CatalogException" not in check.stderr
    # Created but empty: every check passes on no rows.
    assert cli("create-schema", "-c", str(config)).returncode == 0
    assert cli("check", "-c", str(config)).returncode == 0
