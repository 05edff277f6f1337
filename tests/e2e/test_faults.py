"""Faults that real networks bring, injected into real services: the result must equal a clean run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.helpers import assert_same_tables, cli, read_tables, run_json, write_config
from tests.support.redshift import comparable, new_schema, rs_config, rs_tables
from tests.support.s3_faults import S3Faults
from tests.support.services import Redshift, S3Endpoint


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
    assert_same_tables(tables, clean)


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
    sources = s3.upload_sources(sample_dir / "song_data", sample_dir / "log_data", "sparkify-raw", schema)
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


# Below the pipeline, s3fs retries a failed request 5 times and botocore as often as aws.max_attempts says (1
# here), and a listing is two calls: an outage of 12 requests outlasts them, so only the pipeline's own retry can
# absorb it.
OUTAGE = 12


@pytest.fixture(scope="module")
def sample_s3(s3: S3Endpoint, sample_dir: Path) -> dict[str, str]:
    return s3.upload_sources(sample_dir / "song_data", sample_dir / "log_data", "sparkify-outage")


@pytest.mark.parametrize(
    ("step", "request_line"),
    [
        ("listing", r"GET /sparkify-outage\?list-type=2&prefix=log_data"),
        ("reading", r"GET /sparkify-outage/log_data/2018/11/2018-11-05-events.json"),
    ],
)
def test_an_s3_outage_longer_than_the_sdk_retries_is_absorbed_by_the_pipeline(
    step: str,
    request_line: str,
    s3: S3Endpoint,
    sample_s3: dict[str, str],
    tmp_path: Path,
    clean: dict[str, pd.DataFrame],
) -> None:
    proxy = S3Faults(int(s3.url.rsplit(":", 1)[1]))
    url = proxy.start()
    outage = proxy.fail_next(request_line, OUTAGE)
    try:
        config = write_config(
            tmp_path,
            sample_s3["song_data"],
            sample_s3["log_data"],
            aws={"s3_endpoint_url": url, "max_attempts": 1},
            run={"retry_base_seconds": 0.1},
        )
        proc = cli("run", "-c", str(config))
    finally:
        proxy.stop()
    assert outage.hits == OUTAGE
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        rf"WARNING pipeline.ops.retry: {step} s3://sparkify-outage/log_data\S* .*failed \(transient", proc.stderr
    )
    tables = read_tables(tmp_path / "wh.duckdb")
    assert_same_tables(tables, clean)


@pytest.mark.parametrize(
    ("step", "request_line", "message"),
    [
        ("listing", r"prefix=log_data", "source error: s3://sparkify-outage/log_data"),
        (
            "reading",
            r"GET /sparkify-outage/log_data/2018/11/2018-11-05",
            "source error: access denied reading s3://sparkify-outage/log_data/2018/11/2018-11-05-events.json",
        ),
    ],
)
def test_access_denied_is_not_retried_and_names_the_source(
    step: str, request_line: str, message: str, s3: S3Endpoint, sample_s3: dict[str, str], tmp_path: Path
) -> None:
    proxy = S3Faults(int(s3.url.rsplit(":", 1)[1]))
    url = proxy.start()
    proxy.fail_next(request_line, 100, status=403)
    try:
        config = write_config(
            tmp_path, sample_s3["song_data"], sample_s3["log_data"], aws={"s3_endpoint_url": url, "max_attempts": 1}
        )
        proc = cli("run", "-c", str(config))
    finally:
        proxy.stop()
    assert proc.returncode == 5, proc.stderr
    assert message in proc.stderr
    assert "pipeline.ops.retry" not in proc.stderr, "a permanent fault is not retried"
    # Not weighed as bad input: nothing was loaded, nothing rejected.
    assert not (tmp_path / "wh.duckdb").exists() or read_tables(tmp_path / "wh.duckdb")["songplays"].empty
    assert not list((tmp_path / "rejects").glob("*")) if (tmp_path / "rejects").exists() else True


def test_a_fault_in_the_middle_of_a_large_file_resumes_at_the_byte_reached(
    s3: S3Endpoint, sample_s3: dict[str, str], tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    # batch_mb 0.05: the 243 KB day is larger than a batch, so it is streamed in ranged reads of 50 KB; the
    # first read goes through, then an outage longer than every retry below the pipeline's.
    proxy = S3Faults(int(s3.url.rsplit(":", 1)[1]))
    url = proxy.start()
    outage = proxy.fail_next(r"GET /sparkify-outage/log_data/2018/11/2018-11-15-events.json", OUTAGE, after=1)
    try:
        config = write_config(
            tmp_path,
            sample_s3["song_data"],
            sample_s3["log_data"],
            aws={"s3_endpoint_url": url, "max_attempts": 1},
            run={"retry_base_seconds": 0.1},
            source={"batch_mb": 0.05},
        )
        proc = cli("run", "--json", "-c", str(config))
    finally:
        proxy.stop()
    assert proc.returncode == 0, proc.stderr
    assert outage.hits == OUTAGE
    assert re.search(r"WARNING pipeline.ops.retry: reading \S+2018-11-15-events.json .*at byte [1-9]", proc.stderr)
    summary = json.loads(proc.stdout)
    assert summary["records_read"]["log_data"] == 8056, "no line read twice or skipped"
    tables = read_tables(tmp_path / "wh.duckdb")
    assert_same_tables(tables, clean)


def test_a_staging_outage_on_s3_is_absorbed_by_the_pipeline(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_dir: Path, clean: dict[str, pd.DataFrame]
) -> None:
    schema = new_schema()
    sources = s3.upload_sources(sample_dir / "song_data", sample_dir / "log_data", "sparkify-raw", schema)
    config, env = rs_config(tmp_path, s3, redshift, sources, schema)
    proxy = S3Faults(int(s3.url.rsplit(":", 1)[1]))
    url = proxy.start()
    outage = proxy.fail_next(rf"PUT /sparkify-staging/{schema}/[^ ]*/songplays/", OUTAGE)
    try:
        proc = cli(
            "run",
            "-c",
            str(config),
            env={
                **env,
                "SPARKIFY__AWS__S3_ENDPOINT_URL": url,
                "SPARKIFY__AWS__MAX_ATTEMPTS": "1",
                "SPARKIFY__RUN__RETRY_BASE_SECONDS": "0.1",
            },
        )
    finally:
        proxy.stop()
    assert outage.hits == OUTAGE
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"WARNING pipeline.ops.retry: staging s3://sparkify-staging/\S+/songplays/", proc.stderr)
    got = rs_tables(redshift, schema)
    for name in clean:
        pd.testing.assert_frame_equal(comparable(got[name]), comparable(clean[name]), obj=name)


def test_a_duckdb_file_held_by_another_process_is_waited_for(
    sample_dir: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data", run={"retry_base_seconds": 0.5})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(2)",
            str(tmp_path / "wh.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    proc = cli("run", "-c", str(config))
    holder.wait(30)
    assert proc.returncode == 0, proc.stderr
    assert "failed (transient" in proc.stderr and "lock" in proc.stderr.lower()
    tables = read_tables(tmp_path / "wh.duckdb")
    assert_same_tables(tables, clean)
