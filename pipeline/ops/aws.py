"""AWS sessions for awswrangler and boto3, built from config and the standard credential chain.

Credentials are never read from config: boto3 finds them (environment, profile, instance role, SSO).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3

    from pipeline.core.config import Config


def session(cfg: Config) -> boto3.Session:
    import boto3

    return boto3.Session(region_name=cfg.aws.region or None, profile_name=cfg.aws.profile or None)


def configure_wrangler(cfg: Config) -> None:
    """Point awswrangler at the configured S3 endpoint, and keep it in-process.

    awswrangler switches itself to Ray and Modin whenever they are installed, and its distributed functions
    then expect Modin frames. The pipeline's frames are pandas in every engine: with ``engine: ray`` the
    parallelism is one Ray task per batch of files (``distributed.py``), each calling awswrangler in-process,
    so awswrangler is pinned to its Python engine everywhere, driver and workers alike.
    """
    import awswrangler as wr
    import botocore.config

    wr.engine.set("python")
    wr.memory_format.set("pandas")
    # Staging writes and COPY's S3 calls retry like the source reads do (``aws.max_attempts``).
    wr.config.botocore_config = botocore.config.Config(
        retries={"max_attempts": cfg.aws.max_attempts, "mode": "standard"}
    )
    if cfg.aws.s3_endpoint_url:
        wr.config.s3_endpoint_url = cfg.aws.s3_endpoint_url
