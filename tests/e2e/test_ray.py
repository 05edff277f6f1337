"""engine: ray on a real local Ray cluster (a head and a worker node on 127.0.0.1)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support import scenarios
from tests.support.helpers import read_tables, run_json, write_config
from tests.support.services import free_port

RAY = Path(sys.executable).parent / "ray"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    if not RAY.exists():
        pytest.fail("ray is not installed: the `distributed` extra is part of `make test`'s environment")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    port = free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    subprocess.run(
        [str(RAY), "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
        check=True,
        env=env,
        capture_output=True,
        timeout=180,
    )
    try:
        subprocess.run(
            [str(RAY), "start", f"--address=127.0.0.1:{port}", *common],
            check=True,
            env=env,
            capture_output=True,
            timeout=180,
        )
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_ray_engine_builds_the_same_star_tables(sample_dir: Path, tmp_path: Path, ray_cluster: str) -> None:
    local, distributed = tmp_path / "local", tmp_path / "ray"
    local.mkdir()
    distributed.mkdir()
    run_json(write_config(local, sample_dir / "song_data", sample_dir / "log_data"))
    # 1 MB batches: the sample's log files become several tasks, spread over both nodes.
    config = write_config(distributed, sample_dir / "song_data", sample_dir / "log_data", source={"batch_mb": 1})
    config.write_text(config.read_text() + f"engine: ray\nray:\n  address: {ray_cluster}\n")
    summary = run_json(config, env={"RAY_USAGE_STATS_ENABLED": "0"})
    assert summary["engine"] == "ray" and summary["ray_nodes_used"] == 2, "tasks ran on the head and the worker"
    # Song files too are read by tasks: one group per cluster CPU (one on each node here).
    assert summary["ray_tasks"]["song_data"] == 2 and summary["ray_tasks"]["log_data"] >= 4
    assert summary["records_read"]["song_data"] == 71
    assert summary["records_read"]["log_data"] == 8056
    a, b = read_tables(local / "wh.duckdb"), read_tables(distributed / "wh.duckdb")
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


def test_nights_on_ray_end_equal_to_one_full_run(tmp_path: Path, ray_cluster: str) -> None:
    """The nightly property with tasks on two nodes: their partials combine like the local engine's batches."""
    ds, nights = scenarios.hard_case()
    source = scenarios.Source(tmp_path / "src")
    config = write_config(tmp_path, tmp_path / "src" / "song_data", tmp_path / "src" / "log_data")
    config.write_text(config.read_text() + f"engine: ray\nray:\n  address: {ray_cluster}\n")
    for night in nights:
        source.apply(ds, night)
        summary = run_json(config, env={"RAY_USAGE_STATS_ENABLED": "0", "SPARKIFY__SOURCE__BATCH_MB": "0.004"})
        assert summary["engine"] == "ray" and summary["status"] == "succeeded"

    once = tmp_path / "once"
    once.mkdir()
    expected = scenarios.expected_folder(ds, nights, tmp_path / "expected")
    run_json(write_config(once, expected / "song_data", expected / "log_data"))
    want, got = read_tables(once / "wh.duckdb"), read_tables(tmp_path / "wh.duckdb")
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)
