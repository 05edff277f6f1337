"""Sources on a real S3 API (moto's server on loopback), read through s3fs exactly as in production."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.core.config import load_config
from pipeline.extract.discover import discover
from pipeline.extract.reader import extract
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from tests.support.services import S3Endpoint


def _options(s3: S3Endpoint, concurrency: int = 32) -> dict:
    cfg = load_config(
        None, environ={"SPARKIFY__AWS__S3_ENDPOINT_URL": s3.url, "SPARKIFY__SOURCE__CONCURRENCY": str(concurrency)}
    )
    return cfg.storage_options()


def test_s3_discovery_skips_debris_and_reads_like_local(s3: S3Endpoint, sample_dir: Path) -> None:
    url = s3.upload_tree(sample_dir / "log_data", "sparkify-sources", "logs-with-debris")
    for key in (
        "logs-with-debris/2018/11/.ipynb_checkpoints/2018-11-01-events-checkpoint.json",
        "logs-with-debris/_SUCCESS",
        "logs-with-debris/2018/11/README.txt",
    ):
        s3.client.put_object(Bucket="sparkify-sources", Key=key, Body=b"{}")

    fs, files = discover(url, _options(s3))
    assert len(files) == 30
    assert all(f.url.startswith("s3://sparkify-sources/logs-with-debris/2018/11/") for f in files)
    assert all(f.version for f in files), "the ETag identifies a file version"

    remote = extract(LOG_SOURCE, fs, files, concurrency=32)
    local_fs, local_files = discover(str(sample_dir / "log_data"))
    local = extract(LOG_SOURCE, local_fs, local_files)
    assert remote.rejects == [] and len(remote.frame) == 8056
    pd.testing.assert_frame_equal(remote.frame, local.frame)


def test_concurrent_fetch_keeps_file_order(s3: S3Endpoint, sample_dir: Path) -> None:
    url = s3.upload_tree(sample_dir / "song_data", "sparkify-sources", "songs-order")
    fs, files = discover(url, _options(s3, concurrency=8))
    x = extract(SONG_SOURCE, fs, files, concurrency=8)
    # Row i comes from file i: the provenance columns point at the right object.
    for file_index, song_id in zip(x.frame["_file"], x.frame["song_id"], strict=True):
        key = files[file_index].path.split("/", 1)[1]
        assert song_id in s3.client.get_object(Bucket="sparkify-sources", Key=key)["Body"].read().decode()
