"""AWS sessions for awswrangler and boto3, built from config and the standard credential chain.

Credentials are never read from config: boto3 finds them (environment, profile, instance role, SSO).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3

    from .config import Config


def session(cfg: Config) -> boto3.Session:
    import boto3

    return boto3.Session(region_name=cfg.aws.region or None, profile_name=cfg.aws.profile or None)


def configure_wrangler(cfg: Config) -> None:
    """Point awswrangler at the configured S3 endpoint, and pin its engine to the configured one.

    awswrangler switches itself to Ray and Modin whenever they are installed; with ``engine: local`` it
    must stay in-process, so the engine is always set explicitly.
    """
    import awswrangler as wr

    if cfg.engine == "ray":
        wr.engine.set("ray")
        wr.memory_format.set("modin")
    else:
        wr.engine.set("python")
        wr.memory_format.set("pandas")
    if cfg.aws.s3_endpoint_url:
        wr.config.s3_endpoint_url = cfg.aws.s3_endpoint_url
