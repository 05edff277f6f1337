"""Helpers for runs on Redshift (the stand-in, or a live cluster): a config, the tables read back, and frames
made comparable across warehouses."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.schema import TABLES
from tests.support.helpers import write_config
from tests.support.services import IAM_ROLE, RS_PASSWORD, Redshift, S3Endpoint


def rs_config(tmp: Path, s3: S3Endpoint, rs: Redshift, sources: dict[str, str], schema: str) -> tuple[Path, dict]:
    s3.ensure_bucket("sparkify-staging")
    config = write_config(
        tmp,
        sources["song_data"],
        sources["log_data"],
        staging={"path": f"s3://sparkify-staging/{schema}"},
        warehouse={
            "target": "redshift",
            "schema": schema,
            "redshift": {
                "host": "127.0.0.1",
                "port": rs.port,
                "database": "postgres",
                "user": "postgres",
                "ssl": False,
                "iam_role": IAM_ROLE,
            },
        },
        aws={"s3_endpoint_url": s3.url, "region": "us-east-1"},
    )
    return config, {"SPARKIFY_REDSHIFT_PASSWORD": RS_PASSWORD}


def rs_tables(rs: Redshift, schema: str) -> dict[str, pd.DataFrame]:
    con = rs.connect()
    try:
        out = {}
        for t in TABLES:
            cur = con.cursor()
            cur.execute(f'SELECT * FROM "{schema}"."{t.name}" ORDER BY ' + ", ".join(f'"{k}"' for k in t.primary_key))
            cols = [d[0] for d in cur.description]
            out[t.name] = pd.DataFrame([list(r) for r in cur.fetchall()], columns=cols)
        return out
    finally:
        con.close()


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NaT or v is pd.NA:
        return "NULL"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if hasattr(v, "isoformat"):
        return pd.Timestamp(v).isoformat()
    return str(v)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Every value as text: DuckDB and the Redshift driver return different Python types for the same value."""
    return frame.astype(object).map(_cell).reset_index(drop=True)


def new_schema() -> str:
    return "t_" + uuid.uuid4().hex[:10]
