"""Configuration: ``config.yaml`` shaped files, overridden by ``SPARKIFY__SECTION__KEY`` variables.

Every key is declared below with its type and default, so a typo or a wrong type fails at start-up with
the key's name instead of surfacing hours later as a strange run. Secrets have no key here at all: the
Redshift password and AWS keys come from the environment or the AWS credential chain.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Union

import yaml

ENV_PREFIX = "SPARKIFY__"
# The built-in demo location: the only place synthetic data is ever generated into (``demo`` settings).
DEMO_ROOT = Path(__file__).resolve().parents[2] / "data" / "demo"  # the repository's own data/demo
TARGETS = ("duckdb", "redshift")


class ConfigError(ValueError):
    """A configuration key that is unknown, missing or of the wrong type or value."""


def check_window(full_refresh: bool, since: date | None, until: date | None) -> None:
    """Refuse a run's options that contradict each other, before it takes the lock or touches anything."""
    if since and until and since > until:
        raise ConfigError(f"--since {since} is after --until {until}")
    if full_refresh and (since or until):
        raise ConfigError(
            "--full-refresh rebuilds every table from every file; it cannot be limited to --since/--until "
            "(that would leave the warehouse holding one window). Back-fill a window with --since/--until alone."
        )


@dataclass
class SourceConfig:
    #: fsspec URL or local path of the song metadata (one JSON object per file).
    song_data: str = "data/demo/song_data"
    #: fsspec URL or local path of the event logs (JSON lines, one file per day).
    log_data: str = "data/demo/log_data"
    #: Files fetched at once; object stores need many requests in flight for small files.
    concurrency: int = 64
    #: Log data is processed in batches of about this many MB of JSON: peak memory grows with it (about
    #: 3-4x), not with the size of the input. Song files are read in one batch. Fractions are allowed.
    batch_mb: float = 256

    @property
    def batch_bytes(self) -> int:
        return max(1, int(self.batch_mb * (1 << 20)))


@dataclass
class DemoConfig:
    #: Generate the synthetic demo dataset when the source is the built-in demo folders (data/demo/ of this
    #: repository, the default) and they are empty. Never anywhere else.
    generate_if_empty: bool = True
    songs: int = 2_000
    events: int = 20_000
    seed: int = 42


@dataclass
class StagingConfig:
    #: Where the star frames are written as Parquet before the bulk load (local path or s3:// URL).
    path: str = "build/staging"
    #: Keep a successful run's staged files (a failed run's are kept for ``keep_failed_days``).
    keep: bool = False
    #: Days a failed run's staged files are kept for inspection; a killed run's are removed by the next run.
    keep_failed_days: int = 7


@dataclass
class RejectsConfig:
    #: Folder for the rejected records of each run (JSON lines with file, line, reason, raw text).
    path: str = "build/rejects"
    #: Fail the run, loading nothing, when rejected records weigh more than this fraction of the records read
    #: (a file that cannot be read at all weighs the records its size would hold).
    max_fraction: float = 0.01
    #: Hold back a re-delivered file (keeping the version loaded before) when it would lose more than this
    #: fraction of the records loaded from that version; the run then exits 6. Accept one with
    #: ``run --accept-shrunk URL``; 1 turns the guard off.
    max_shrink: float = 0.5


@dataclass
class RunConfig:
    #: Lock file held for the whole run: a second invocation exits at once (code 75) while it is held.
    lock_path: str = "build/sparkify.lock"
    #: Attempts for each step that can meet a transient fault (S3 throttling, a dropped connection).
    attempts: int = 4
    #: First backoff delay in seconds; doubles each attempt, capped at 30 s.
    retry_base_seconds: float = 1.0
    #: Prometheus text file written after every run (node_exporter's textfile collector); empty for none.
    metrics_path: str = "build/sparkify.prom"
    #: Worker processes for the local engine's batches; 0 for one per core from four cores up (as many as leave
    #: batches of 8 MB), and one process below. They share source.batch_mb: each reads batches of
    #: batch_mb / workers.
    workers: int = 0
    #: Days between audits: a load checks the rows it wrote, and every row of every table when no load has done
    #: so for this long (0: every load). A warehouse changed behind the pipeline's back is caught within it.
    audit_days: float = 7.0


@dataclass
class DuckDBConfig:
    path: str = "build/sparkify.duckdb"
    #: DuckDB's memory cap for the load; past it, DuckDB spills to a temporary folder beside the file.
    memory_limit: str = "900MB"


@dataclass
class AwsConfig:
    #: AWS region; empty to take it from the AWS configuration (AWS_REGION, ~/.aws/config).
    region: str = ""
    #: Named profile of the AWS credential chain; empty for the default chain.
    profile: str = ""
    #: S3-compatible endpoint (MinIO, a test server); empty for AWS itself.
    s3_endpoint_url: str = ""
    #: Attempts the AWS SDK makes itself on throttling and 5xx before the pipeline's own retry sees the fault.
    max_attempts: int = 8


@dataclass
class RedshiftConfig:
    #: Secrets Manager secret (name or ARN) with the connection details: the preferred way to connect.
    secret_id: str = ""
    #: Or a Glue connection name.
    glue_connection: str = ""
    #: Or host, port, database and user, with the password in the environment variable named below.
    host: str = ""
    port: int = 5439
    database: str = "dev"
    user: str = ""
    #: Name of the environment variable holding the password (the password itself never goes in a file).
    password_env: str = "SPARKIFY_REDSHIFT_PASSWORD"
    #: TLS to the cluster. Only a local stand-in without TLS needs false.
    ssl: bool = True
    #: ARN of the IAM role Redshift assumes to COPY from the staging prefix.
    iam_role: str = ""
    #: Seconds to wait for a connection.
    timeout: int = 30


@dataclass
class WarehouseConfig:
    #: duckdb (the embedded default) or redshift.
    target: str = "duckdb"
    #: Schema holding the star tables; empty for the target's default (main on DuckDB, public on Redshift).
    schema: str = ""
    duckdb: DuckDBConfig = field(default_factory=DuckDBConfig)
    redshift: RedshiftConfig = field(default_factory=RedshiftConfig)

    @property
    def schema_name(self) -> str:
        return self.schema or ("main" if self.target == "duckdb" else "public")


@dataclass
class RayConfig:
    #: Ray cluster to join: "host:6379", "ray://host:10001", or "auto"; empty starts a local Ray.
    address: str = ""


@dataclass
class Config:
    #: local (one process) or ray (awswrangler's distributed mode: log batches run as Ray tasks).
    engine: str = "local"
    source: SourceConfig = field(default_factory=SourceConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    staging: StagingConfig = field(default_factory=StagingConfig)
    rejects: RejectsConfig = field(default_factory=RejectsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    aws: AwsConfig = field(default_factory=AwsConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options for S3 URLs (never credentials: those come from the AWS chain).

        The connection pool is sized to the fetch concurrency: botocore's default of 10 connections
        would otherwise cap the number of requests in flight, whatever the concurrency setting says.
        """
        opts: dict[str, Any] = {
            "config_kwargs": {
                "max_pool_connections": max(10, self.source.concurrency),
                # botocore retries throttling and 5xx with backoff before s3fs or the pipeline sees them.
                "retries": {"max_attempts": self.aws.max_attempts, "mode": "standard"},
            }
        }
        client: dict[str, Any] = {}
        if self.aws.s3_endpoint_url:
            client["endpoint_url"] = self.aws.s3_endpoint_url
        if self.aws.region:
            client["region_name"] = self.aws.region
        if client:
            opts["client_kwargs"] = client
        if self.aws.profile:
            opts["profile"] = self.aws.profile
        return opts


# Keys holding local paths: relative ones are resolved against the config file's folder, so a cron job
# started from any working directory reads and writes the same places as `make run`.
_PATH_KEYS = (
    ("source", "song_data"),
    ("source", "log_data"),
    ("staging", "path"),
    ("rejects", "path"),
    ("run", "lock_path"),
    ("run", "metrics_path"),
    ("warehouse", "duckdb", "path"),
)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(path: str) -> bool:
    return bool(_URL.match(path))


def _type_ok(value: Any, hint: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    return True


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else str(unknown[0])
        raise ConfigError(f"{key}: unknown key (known here: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(typing.cast(type, hint), value, key)
        elif not _type_ok(value, hint):
            raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
        else:
            kwargs[name] = float(value) if hint is float else value
    return cls(**kwargs)


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for k in keys[:-1]:
        child = node.get(k)
        if not isinstance(child, dict):
            child = {}
            node[k] = child
        node = child
    node[keys[-1]] = value


def env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    """``SPARKIFY__WAREHOUSE__DUCKDB__PATH=x`` -> ``{"warehouse": {"duckdb": {"path": "x"}}}``.

    Values are read as YAML scalars, so ``true``, ``8`` and ``0.5`` arrive typed.
    """
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)) or value is None:
            value = raw
        _set_path(out, keys, value)
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _problems(cfg: Config, environ: typing.Mapping[str, str], connecting: bool) -> list[str]:
    """Every setting that would fail the run later, each naming its key: all at once, so one edit fixes them."""
    out: list[str] = []

    def finite(key: str, value: float) -> bool:
        if math.isfinite(value):
            return True
        out.append(f"{key}: must be a finite number, got {value}")
        return False

    if cfg.warehouse.target not in TARGETS:
        out.append(f"warehouse.target: {cfg.warehouse.target!r} is not one of {', '.join(TARGETS)}")
    if cfg.run.workers < 0:
        out.append(f"run.workers: must be 0 (every core) or more, got {cfg.run.workers}")
    if cfg.source.concurrency < 1:
        out.append(f"source.concurrency: must be at least 1, got {cfg.source.concurrency}")
    if cfg.engine not in ("local", "ray"):
        out.append(f"engine: {cfg.engine!r} is not one of local, ray")
    if finite("source.batch_mb", cfg.source.batch_mb) and cfg.source.batch_mb <= 0:
        out.append(f"source.batch_mb: must be more than 0, got {cfg.source.batch_mb}")
    if cfg.run.attempts < 1:
        out.append(f"run.attempts: must be at least 1, got {cfg.run.attempts}")
    if finite("run.retry_base_seconds", cfg.run.retry_base_seconds) and cfg.run.retry_base_seconds < 0:
        out.append(f"run.retry_base_seconds: must not be negative, got {cfg.run.retry_base_seconds}")
    if cfg.aws.max_attempts < 1:
        out.append(f"aws.max_attempts: must be at least 1, got {cfg.aws.max_attempts}")
    if cfg.staging.keep_failed_days < 0:
        out.append(f"staging.keep_failed_days: must not be negative, got {cfg.staging.keep_failed_days}")
    for key in ("max_fraction", "max_shrink"):
        value = getattr(cfg.rejects, key)
        if not 0.0 <= value <= 1.0:  # NaN fails this too
            out.append(f"rejects.{key}: must be between 0 and 1, got {value}")
    for key in ("songs", "events"):
        if getattr(cfg.demo, key) < 0:
            out.append(f"demo.{key}: must not be negative")
    for key, value in (
        ("source.song_data", cfg.source.song_data),
        ("source.log_data", cfg.source.log_data),
        ("staging.path", cfg.staging.path),
        ("rejects.path", cfg.rejects.path),
        ("run.lock_path", cfg.run.lock_path),
    ):
        if not value.strip():
            out.append(f"{key}: must not be empty")
    if cfg.warehouse.target == "duckdb":
        if not cfg.warehouse.duckdb.path.strip() or cfg.warehouse.duckdb.path.strip() == ":memory:":
            out.append("warehouse.duckdb.path: must name a file (an in-memory warehouse would be lost at exit)")
        if not _duckdb_takes(cfg.warehouse.duckdb.memory_limit):
            out.append(
                f"warehouse.duckdb.memory_limit: a size such as 900MB or 2GB, got {cfg.warehouse.duckdb.memory_limit!r}"
            )
        if is_url(cfg.staging.path):
            out.append(f"staging.path: the duckdb target stages to a local folder, got {cfg.staging.path!r}")
    if cfg.warehouse.target == "redshift":
        out += _redshift_problems(cfg, environ, connecting)
    if cfg.warehouse.schema:
        from pipeline.core.sql import validate_identifier

        try:
            validate_identifier(cfg.warehouse.schema, "warehouse.schema")
        except ValueError as exc:
            out.append(str(exc))
        else:
            if cfg.warehouse.schema != cfg.warehouse.schema.lower():
                # Unquoted identifiers fold to lower case in both warehouses: "Main" would load main and then
                # find nothing under Main.
                out.append(f"warehouse.schema: lower case only, got {cfg.warehouse.schema!r}")
    return out


def _duckdb_takes(memory_limit: str) -> bool:
    """Whether DuckDB accepts ``memory_limit`` (900MB, 1G, 80%, ...): asked of DuckDB itself, which is the judge."""
    if memory_limit == DuckDBConfig.memory_limit:
        return True
    import duckdb

    try:
        duckdb.connect(":memory:", config={"memory_limit": memory_limit}).close()
    except duckdb.Error:
        return False
    return True


def _redshift_problems(cfg: Config, environ: typing.Mapping[str, str], connecting: bool) -> list[str]:
    rs, out = cfg.warehouse.redshift, []
    if not cfg.staging.path.startswith("s3://"):
        out.append(f"staging.path: Redshift COPYs from S3; set an s3:// prefix, got {cfg.staging.path!r}")
    if not rs.iam_role:
        out.append("warehouse.redshift.iam_role: required for COPY (the ARN of a role Redshift assumes)")
    if not (rs.secret_id or rs.glue_connection or (rs.host and rs.user)):
        out.append(
            "warehouse.redshift: set secret_id, or glue_connection, or host and user (password from the "
            "environment variable named by password_env)"
        )
    elif not (rs.secret_id or rs.glue_connection) and not rs.password_env:
        out.append("warehouse.redshift.password_env: name the environment variable holding the password")
    elif connecting and not (rs.secret_id or rs.glue_connection) and rs.password_env not in environ:
        out.append(f"warehouse.redshift.password_env: the environment variable {rs.password_env} is not set")
    return out


def _validate(cfg: Config, environ: typing.Mapping[str, str], connecting: bool) -> None:
    problems = _problems(cfg, environ, connecting)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} settings to fix:\n  " + "\n  ".join(problems))


def load_config(
    path: str | Path | None, environ: typing.Mapping[str, str] | None = None, connecting: bool = True
) -> Config:
    """Read ``path`` (or only defaults when None), apply environment overrides, validate (the secrets a
    connection needs only when ``connecting``: ``config`` shows the settings without them)."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
        data = loaded or {}
        base_dir = p.resolve().parent
    data = _merge(data, env_overrides(environ))
    cfg: Config = _build(Config, data, "")
    _validate(cfg, environ, connecting)
    for keys in _PATH_KEYS:
        node: Any = cfg
        for k in keys[:-1]:
            node = getattr(node, k)
        value = getattr(node, keys[-1])
        if value and not is_url(value) and not Path(value).is_absolute():
            setattr(node, keys[-1], str(base_dir / value))
    return cfg


def describe_keys(cls: type = Config, prefix: str = "") -> list[tuple[str, str, Any]]:
    """Every key with its environment variable and default, for the docs and ``config`` output."""
    rows: list[tuple[str, str, Any]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows += describe_keys(typing.cast(type, hint), key + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else None
            rows.append((key, ENV_PREFIX + key.upper().replace(".", "__"), default))
    return rows
