"""The local engine on several cores: batches (and song files) in worker processes give the same tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import load_config
from pipeline.run import pool
from tests.support.helpers import assert_same_tables, read_tables, run_here, write_config


def test_batches_and_song_files_in_three_workers_give_the_tables_of_one_process(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "SONG_FILES_PER_WORKER", 10)  # the sample's 71 song files in three groups
    config = write_config(
        tmp_path, sample_dir / "song_data", sample_dir / "log_data", run={"workers": 3}, source={"batch_mb": 0.3}
    )
    summary = run_here(config)
    assert summary.status == "succeeded" and summary.workers == 3
    assert summary.records_read == {"song_data": 71, "log_data": 8056}
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)
    assert summary.work_seconds > 0 and summary.span_seconds > 0


def test_workers_share_the_batch_budget_and_a_small_night_runs_in_this_process(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "songs", tmp_path / "logs", source={"batch_mb": 256})
    auto = load_config(config)
    assert pool.workers_for(auto) == min(pool.cores(), 32)
    engine = pool.PooledEngine(auto, 4)
    assert engine.batch_bytes == 64 << 20, "four workers, a quarter of the budget each"
    assert not engine._worth_it(5 << 20) and engine._worth_it(pool.MIN_PARALLEL_BYTES)
    tiny = load_config(write_config(tmp_path, tmp_path / "songs", tmp_path / "logs", source={"batch_mb": 4}))
    assert pool.workers_for(tiny) == 1, "no worker gets batches under 8 MB when the count is automatic"
    chosen = load_config(write_config(tmp_path, tmp_path / "songs", tmp_path / "logs", run={"workers": 3}))
    assert pool.workers_for(chosen) == 3 and pool.PooledEngine(chosen, 3)._worth_it(0), "as configured"
