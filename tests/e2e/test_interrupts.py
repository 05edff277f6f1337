"""Signals and kills: SIGTERM and SIGINT roll back, log, record and report; a kill after the commit is a success.

Each run is paused inside its load transaction (``SPARKIFY_FAULT_PAUSE_AT``) and sent the signal there, the
moment an on-call engineer's Ctrl-C or a scheduler's timeout most often lands in a long night.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.support.helpers import cli, descendants, history, no_process_left, paused_run, read_tables, write_config


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_the_load_rolls_back_and_is_logged_recorded_and_measured(
    sample_copy: Path, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    days = sorted((sample_copy / "log_data").rglob("*.json"))
    held_back = days[-1].read_bytes()
    days[-1].unlink()
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    assert cli("run", "-q", "-c", str(config)).returncode == 0
    before = read_tables(tmp_path / "wh.duckdb")
    days[-1].write_bytes(held_back)
    proc = paused_run(config, "merged-songplays")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"interrupted by {sig.name}; the load, if it had started, was rolled back" in err
    last = history(config)[0]
    assert last["status"] == "interrupted" and f"interrupted by {sig.name}" in str(last["error"])
    prom = (tmp_path / "build" / "sparkify.prom").read_text()
    assert "sparkify_last_run_success 0" in prom
    after = read_tables(tmp_path / "wh.duckdb")
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)


def test_a_signal_while_workers_run_the_batches_stops_every_worker_and_loads_nothing(
    sample_dir: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, sample_dir / "song_data", sample_dir / "log_data", run={"workers": 2}, source={"batch_mb": 0.5}
    )
    proc = paused_run(config, "task-batch")  # a worker has staged a batch and waits there
    workers = descendants(proc.pid)
    assert len(workers) >= 2, "the fork server and its workers"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert history(config)[0]["status"] == "interrupted"
    assert len(read_tables(tmp_path / "wh.duckdb")["songplays"]) == 0
    no_process_left(workers, "worker processes outlived the run")


def test_a_run_killed_right_after_its_commit_is_recorded_as_succeeded(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    killed = cli("run", "-q", "-c", str(config), env={"SPARKIFY_FAULT_KILL_AT": "after-commit"})
    assert killed.returncode == -signal.SIGKILL
    following = cli("run", "-c", str(config))
    assert following.returncode == 0, following.stderr
    assert "marked abandoned" not in following.stderr
    first = history(config)[-1]
    assert first["status"] == "succeeded" and first["ended_at"] is not None
    assert len(read_tables(tmp_path / "wh.duckdb")["songplays"]) == 6820


def test_a_signal_that_interrupts_a_warehouse_query_is_still_known_as_that_signal() -> None:
    """DuckDB turns the signal into ``RuntimeError: Query interrupted``; the run must still exit 130, not 1."""
    from pipeline.ops import signals

    con = duckdb.connect()
    with signals.handled():
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        with pytest.raises(BaseException) as caught:
            for _ in range(100):  # bounded: short queries, one of which the signal lands in
                con.execute("SELECT count(*) FROM range(300000000) t(i) WHERE i % 7 = 3").fetchall()
        assert signals.received() == signal.SIGINT
    assert "interrupted" in str(caught.value).lower()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored after the run
