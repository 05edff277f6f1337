"""The local engine on several cores: batches (and song files) in worker processes give the same tables."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import load_config
from pipeline.extract.discover import SourceFile
from pipeline.run import pool
from tests.support.helpers import (
    assert_same_tables,
    descendants,
    history,
    no_process_left,
    paused_run,
    read_tables,
    run_here,
    write_config,
)


def test_batches_in_three_workers_give_the_tables_of_one_process(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    config = write_config(
        tmp_path, sample_dir / "song_data", sample_dir / "log_data", run={"workers": 3}, source={"batch_mb": 0.3}
    )
    summary = run_here(config)
    assert summary.status == "succeeded" and summary.workers == 3
    assert summary.records_read == {"song_data": 71, "log_data": 8056}
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)
    assert summary.work_seconds > 0 and summary.span_seconds > 0


def test_song_files_read_by_workers_on_a_night_without_logs_give_the_same_catalogue(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "SONG_FILES_PER_WORKER", 10)  # the sample's 71 song files in three groups
    (tmp_path / "no_logs").mkdir()
    config = write_config(tmp_path, sample_dir / "song_data", tmp_path / "no_logs", run={"workers": 3})
    summary = run_here(config)
    assert summary.workers == 3 and summary.records_read["song_data"] == 71
    tables = read_tables(tmp_path / "wh.duckdb")
    assert_same_tables({t: tables[t] for t in ("songs", "artists")}, {t: clean[t] for t in ("songs", "artists")})


def test_workers_share_the_batch_budget_and_a_small_night_or_a_small_machine_runs_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, tmp_path / "songs", tmp_path / "logs", source={"batch_mb": 256})
    auto = load_config(config)
    monkeypatch.setattr(pool, "cores", lambda: 16)
    assert pool.workers_for(auto) == 16
    monkeypatch.setattr(pool, "cores", lambda: 2)
    assert pool.workers_for(auto) == 1, "two cores: one process, whose threads keep both busy"
    monkeypatch.setattr(pool, "cores", lambda: 64)
    assert pool.workers_for(auto) == 32, "no worker gets batches under 8 MB when the count is automatic"
    engine = pool.PooledEngine(auto, 4)
    day = SourceFile(path="d.json", url="d.json", size=5 << 20, version="")
    assert engine.read_batch_bytes([day]) == 256 << 20, "a small night: one process, whole batches"
    engine.close()
    engine = pool.PooledEngine(auto, 4)
    assert engine.read_batch_bytes([day._replace(size=64 << 20)]) == 64 << 20, "a quarter of the budget each"
    engine.close()
    chosen = load_config(write_config(tmp_path, tmp_path / "songs", tmp_path / "logs", run={"workers": 3}))
    assert pool.workers_for(chosen) == 3, "as configured, whatever the machine"
    engine = pool.PooledEngine(chosen, 3)
    assert engine.read_batch_bytes([day]) == chosen.source.batch_bytes // 3, "and whatever the night"
    engine.close()


def test_a_run_killed_outright_takes_its_workers_with_it(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, sample_dir / "song_data", sample_dir / "log_data", run={"workers": 2}, source={"batch_mb": 0.5}
    )
    proc = paused_run(config, "task-batch")
    workers = descendants(proc.pid)
    assert len(workers) >= 2
    proc.kill()  # SIGKILL: no handler, no cleanup, as the OOM killer does it
    proc.communicate(timeout=60)
    no_process_left(workers, "workers outlived a killed run")


def test_a_worker_that_dies_fails_the_run_naming_its_files_and_loads_nothing(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, sample_dir / "song_data", sample_dir / "log_data", run={"workers": 2}, source={"batch_mb": 0.5}
    )
    proc = paused_run(config, "task-batch")
    direct = {int(c) for f in Path(f"/proc/{proc.pid}/task").glob("*/children") for c in f.read_text().split()}
    workers = descendants(proc.pid) - direct  # forked by the fork server, not by the run
    assert workers
    os.kill(min(workers), signal.SIGKILL)  # as the OOM killer would
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "a worker process died (out of memory?) while reading" in err and "log_data" in err
    assert "nothing was loaded" in err
    assert history(config)[0]["status"] == "failed"
    assert len(read_tables(tmp_path / "wh.duckdb")["songplays"]) == 0
