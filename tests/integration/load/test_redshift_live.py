"""Opt-in: the end-to-end check against a real Redshift cluster and real S3.

Runs only with ``pytest -m live`` and these environment variables (credentials from the AWS chain):

    SPARKIFY_LIVE_S3_PREFIX        s3://bucket/prefix to upload the sample to and stage under
    SPARKIFY_LIVE_IAM_ROLE         ARN of the role the cluster assumes for COPY
    SPARKIFY_LIVE_SECRET_ID        Secrets Manager secret of the cluster, or instead:
    SPARKIFY_LIVE_HOST, SPARKIFY_LIVE_USER, SPARKIFY_LIVE_DATABASE (default dev),
    SPARKIFY_REDSHIFT_PASSWORD
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.support.helpers import REFERENCE, run_json, write_config

pytestmark = pytest.mark.live

NEEDED = ("SPARKIFY_LIVE_S3_PREFIX", "SPARKIFY_LIVE_IAM_ROLE")


def _live_settings() -> dict[str, str]:
    missing = [n for n in NEEDED if not os.environ.get(n)]
    if not (os.environ.get("SPARKIFY_LIVE_SECRET_ID") or os.environ.get("SPARKIFY_LIVE_HOST")):
        missing.append("SPARKIFY_LIVE_SECRET_ID or SPARKIFY_LIVE_HOST")
    if missing:
        pytest.skip("live Redshift test needs " + ", ".join(missing))
    return dict(os.environ)


def test_sample_end_to_end_on_real_redshift(sample_dir: Path, tmp_path: Path) -> None:
    env = _live_settings()
    import awswrangler as wr
    import redshift_connector

    prefix = env["SPARKIFY_LIVE_S3_PREFIX"].rstrip("/") + f"/sparkify-live-{uuid.uuid4().hex[:8]}"
    for kind in ("song_data", "log_data"):
        for p in sorted((sample_dir / kind).rglob("*.json")):
            wr.s3.upload(local_file=str(p), path=f"{prefix}/{kind}/{p.relative_to(sample_dir / kind).as_posix()}")
    schema = "sparkify_live_" + uuid.uuid4().hex[:8]
    redshift = {
        "iam_role": env["SPARKIFY_LIVE_IAM_ROLE"],
        "secret_id": env.get("SPARKIFY_LIVE_SECRET_ID", ""),
        "host": env.get("SPARKIFY_LIVE_HOST", ""),
        "user": env.get("SPARKIFY_LIVE_USER", ""),
        "database": env.get("SPARKIFY_LIVE_DATABASE", "dev"),
    }
    config = write_config(
        tmp_path,
        f"{prefix}/song_data",
        f"{prefix}/log_data",
        staging={"path": f"{prefix}/staging"},
        warehouse={"target": "redshift", "schema": schema, "redshift": redshift},
    )
    try:
        first = run_json(config)
        assert first["rows_total"] == REFERENCE
        second = run_json(config)
        assert second["rows_total"] == first["rows_total"]
    finally:
        wr.s3.delete_objects(path=prefix + "/")
        if redshift["secret_id"]:
            con = wr.redshift.connect(secret_id=redshift["secret_id"])
        else:
            con = redshift_connector.connect(
                host=redshift["host"],
                user=redshift["user"],
                database=redshift["database"],
                password=env["SPARKIFY_REDSHIFT_PASSWORD"],
            )
        con.autocommit = True
        con.cursor().execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        con.close()
