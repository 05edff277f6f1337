"""Faults that real networks bring, injected into real services: the result must equal a clean run."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from .helpers import cli, read_tables, run_json, write_config
from .load.test_redshift import comparable, new_schema, rs_config, rs_tables
from .s3_faults import S3Faults
from .services import Redshift, S3Endpoint


@pytest.fixture(scope="module")
def clean(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("clean")
    run_json(write_config(tmp, sample_dir / "song_data", sample_dir / "log_data"))
    return read_tables(tmp / "wh.duckdb")


def test_intermittent_s3_throttling_is_retried(
    s3: S3Endpoint, sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    songs = s3.upload_tree(sample_dir / "song_data", "sparkify-flaky", "song_data")
    logs = s3.upload_tree(sample_dir / "log_data", "sparkify-flaky", "log_data")
    flaky = S3Faults(int(s3.url.rsplit(":", 1)[1]), fail_every=4)
    url = flaky.start()
    try:
        config = write_config(tmp_path, songs, logs, aws={"s3_endpoint_url": url})
        summary = run_json(config)
    finally:
        flaky.stop()
    assert flaky.injected >= 20, "the endpoint really failed, many times"
    assert summary["records_rejected"] == {"song_data": 0, "log_data": 0}
    tables = read_tables(tmp_path / "wh.duckdb")
    for name in clean:
        pd.testing.assert_frame_equal(tables[name], clean[name], obj=name)


def test_missing_bucket_fails_at_once_with_a_clear_message(s3: S3Endpoint, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "s3://no-such-bucket/song_data", "s3://no-such-bucket/log_data", aws={"s3_endpoint_url": s3.url}
    )
    proc = cli("run", "-c", str(config))
    assert proc.returncode == 5, proc.stderr
    assert "s3://no-such-bucket/" in proc.stderr
    assert "attempt 2" not in proc.stderr, "a permanent fault is not retried"


def test_dropped_database_connection_mid_load_is_retried(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_dir: Path, clean: dict[str, pd.DataFrame]
) -> None:
    schema = new_schema()
    sources = {
        "song_data": s3.upload_tree(sample_dir / "song_data", "sparkify-raw", f"{schema}/song_data"),
        "log_data": s3.upload_tree(sample_dir / "log_data", "sparkify-raw", f"{schema}/log_data"),
    }
    config, env = rs_config(tmp_path, s3, redshift, sources, schema)
    drops: list[str] = []

    def drop_once(sql: str) -> bool:
        if not drops and re.search(r'COPY "stg_songs"', sql):
            drops.append(sql)
            return True
        return False

    redshift.proxy.drop_if = drop_once
    try:
        proc = cli("run", "-c", str(config), env={**env, "SPARKIFY__RUN__RETRY_BASE_SECONDS": "0.2"})
    finally:
        redshift.proxy.drop_if = None
    assert drops, "the connection was really dropped"
    assert proc.returncode == 0, proc.stderr
    assert "loading failed (transient" in proc.stderr
    got = rs_tables(redshift, schema)
    for name in clean:
        pd.testing.assert_frame_equal(comparable(got[name]), comparable(clean[name]), obj=name)
