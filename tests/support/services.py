"""Real services on loopback for the tests: an S3 API (moto's server) and the Redshift stand-in.

Both are started once per test session on free ports of 127.0.0.1 and stopped at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.redshift_standin.proxy import StandIn

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-never-logged",
    "AWS_SESSION_TOKEN": "testing-session-token",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
IAM_ROLE = "arn:aws:iam::123456789012:role/sparkify-copy"
RS_PASSWORD = "stand-in-password-never-logged"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Endpoint:
    url: str
    client: Any

    def upload_tree(self, folder: Path, bucket: str, prefix: str) -> str:
        """Upload every file under ``folder``; returns the s3:// URL of the prefix."""
        self.ensure_bucket(bucket)
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                self.client.put_object(
                    Bucket=bucket, Key=f"{prefix}/{p.relative_to(folder).as_posix()}", Body=p.read_bytes()
                )
        return f"s3://{bucket}/{prefix}"

    def upload_sources(self, songs: Path, logs: Path, bucket: str, prefix: str = "") -> dict[str, str]:
        """Both datasets under ``bucket``/``prefix``: the two URLs of a config's ``source`` section."""
        at = f"{prefix}/" if prefix else ""
        return {
            "song_data": self.upload_tree(songs, bucket, f"{at}song_data"),
            "log_data": self.upload_tree(logs, bucket, f"{at}log_data"),
        }

    def ensure_bucket(self, bucket: str) -> None:
        existing = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            self.client.create_bucket(Bucket=bucket)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out


@pytest.fixture(scope="session")
def aws_env() -> Iterator[dict[str, str]]:
    """Fake credentials in the environment, as the AWS credential chain would supply real ones."""
    saved = {k: os.environ.get(k) for k in FAKE_AWS}
    os.environ.update(FAKE_AWS)
    yield dict(FAKE_AWS)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    """moto's standalone S3 server in its own process on a free loopback port.

    A separate process, not moto's in-process thread: the endpoint must not share the client's GIL,
    or every concurrency measurement would measure the lock instead of the client.
    """
    import boto3

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        yield S3Endpoint(url=url, client=client)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def s3(aws_env: dict[str, str]) -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


@dataclass
class Redshift:
    port: int
    proxy: StandIn

    def connect(self) -> Any:
        import redshift_connector

        return redshift_connector.connect(
            host="127.0.0.1", port=self.port, database="postgres", user="postgres", password=RS_PASSWORD, ssl=False
        )


@pytest.fixture(scope="session")
def redshift(s3: S3Endpoint) -> Iterator[Redshift]:
    import pgserver

    data = tempfile.mkdtemp(prefix="sparkify-pg-")
    server = pgserver.get_server(data, cleanup_mode="delete")
    sockets = [f for f in os.listdir(data) if f.startswith(".s.PGSQL.") and not f.endswith(".lock")]
    proxy = StandIn(pg_socket=os.path.join(data, sockets[0]), s3_client=s3.client)
    port = proxy.start()
    try:
        yield Redshift(port=port, proxy=proxy)
    finally:
        proxy.stop()
        server.cleanup()
