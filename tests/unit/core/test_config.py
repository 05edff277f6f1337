from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.core.config import ConfigError, describe_keys, env_overrides, load_config
from tests.support.helpers import cli

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_repository_config_loads_and_resolves_paths_next_to_it() -> None:
    cfg = load_config(ROOT / "config.yaml", environ={})
    assert cfg.warehouse.target == "duckdb"
    assert cfg.warehouse.duckdb.path == str(ROOT / "build" / "sparkify.duckdb")
    assert cfg.source.song_data == str(ROOT / "data" / "demo" / "song_data")


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"warehouse\.duckdb\.paht: unknown key"):
        load_config(write(tmp_path, "warehouse:\n  duckdb:\n    paht: x\n"), environ={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"source\.concurrency: expected int"):
        load_config(write(tmp_path, "source:\n  concurrency: many\n"), environ={})


def test_bad_target_and_schema(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"warehouse\.target"):
        load_config(write(tmp_path, "warehouse:\n  target: oracle\n"), environ={})
    with pytest.raises(ConfigError, match=r"warehouse\.schema"):
        load_config(write(tmp_path, "warehouse:\n  schema: 'x; drop table users'\n"), environ={})


def test_environment_overrides_config(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "source:\n  song_data: s3://bucket/songs\n"),
        environ={
            "SPARKIFY__SOURCE__CONCURRENCY": "8",
            "SPARKIFY__WAREHOUSE__DUCKDB__PATH": "/tmp/w.duckdb",
            "SPARKIFY__DEMO__GENERATE_IF_EMPTY": "false",
            "OTHER": "x",
        },
    )
    assert cfg.source.concurrency == 8
    assert cfg.source.song_data == "s3://bucket/songs"  # URLs are not resolved as paths
    assert cfg.warehouse.duckdb.path == "/tmp/w.duckdb"
    assert cfg.demo.generate_if_empty is False


def test_unknown_environment_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"source\.sogn_data: unknown key"):
        load_config(None, environ={"SPARKIFY__SOURCE__SOGN_DATA": "x"})


def test_env_values_are_typed() -> None:
    assert env_overrides({"SPARKIFY__REJECTS__MAX_FRACTION": "0.5"}) == {"rejects": {"max_fraction": 0.5}}


def test_every_key_has_an_environment_variable() -> None:
    keys = {k: env for k, env, _ in describe_keys()}
    assert keys["warehouse.duckdb.path"] == "SPARKIFY__WAREHOUSE__DUCKDB__PATH"
    assert "source.song_data" in keys


def test_log_redaction_hides_secret_values() -> None:
    import logging

    from pipeline.ops.logs import RedactSecrets

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s end", ("s3cr3t-value",), None)
    RedactSecrets(["s3cr3t-value"]).filter(record)
    assert record.getMessage() == "token=*** end"


def test_redshift_target_needs_s3_staging_an_iam_role_and_a_connection(tmp_path: Path) -> None:
    base = "warehouse:\n  target: redshift\n  redshift:\n    host: h\n    user: u\n"
    with pytest.raises(ConfigError, match=r"staging\.path: Redshift COPYs from S3"):
        load_config(write(tmp_path, base + "    iam_role: arn\n"), environ={})
    with pytest.raises(ConfigError, match=r"warehouse\.redshift\.iam_role"):
        load_config(write(tmp_path, base + "staging:\n  path: s3://b/p\n"), environ={})
    with pytest.raises(ConfigError, match=r"set secret_id, or glue_connection, or host and user"):
        load_config(
            write(
                tmp_path, "warehouse:\n  target: redshift\n  redshift:\n    iam_role: arn\nstaging:\n  path: s3://b/p\n"
            ),
            environ={},
        )
    with pytest.raises(ConfigError, match=r"the environment variable SPARKIFY_REDSHIFT_PASSWORD is not set"):
        load_config(write(tmp_path, base + "    iam_role: arn\nstaging:\n  path: s3://b/p\n"), environ={})
    ok = load_config(
        write(tmp_path, base + "    iam_role: arn\nstaging:\n  path: s3://b/p\n"),
        environ={"SPARKIFY_REDSHIFT_PASSWORD": "x"},
    )
    assert ok.warehouse.schema_name == "public" and ok.staging.path == "s3://b/p"


def test_every_missing_redshift_setting_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "warehouse:\n  target: redshift\n"), environ={})
    text = str(err.value)
    assert text.startswith("3 settings to fix:")
    for key in ("staging.path: Redshift COPYs from S3", "warehouse.redshift.iam_role", "host and user"):
        assert key in text
    with pytest.raises(ConfigError, match="SPARKIFY_REDSHIFT_PASSWORD is not set") as err:
        load_config(write(tmp_path, "warehouse:\n  target: redshift\n  redshift: {host: h, user: u}\n"), environ={})
    assert str(err.value).startswith("3 settings to fix:")


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("source:\n  batch_mb: .nan\n", "source.batch_mb: must be a finite number"),
        ("source:\n  batch_mb: .inf\n", "source.batch_mb: must be a finite number"),
        ("run:\n  retry_base_seconds: -1\n", "run.retry_base_seconds: must not be negative"),
        ("warehouse:\n  duckdb:\n    memory_limit: lots\n", "warehouse.duckdb.memory_limit: a size such as"),
        ("run:\n  lock_path: ''\n", "run.lock_path: must not be empty"),
        ("warehouse:\n  duckdb:\n    path: ''\n", "warehouse.duckdb.path: must name a file"),
        ("staging:\n  path: ''\n", "staging.path: must not be empty"),
        ("warehouse:\n  schema: Main\n", "warehouse.schema: lower case only"),
        ("rejects:\n  max_shrink: 1.5\n", "rejects.max_shrink: must be between 0 and 1"),
    ],
)
def test_settings_that_would_fail_later_fail_at_start_up_naming_the_key(
    tmp_path: Path, yaml_text: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(write(tmp_path, yaml_text), environ={})
    proc = cli("config", "-c", str(write(tmp_path, yaml_text)))
    assert proc.returncode == 2 and key in proc.stderr


def test_the_configuration_page_documents_every_key() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    for key, _, _ in describe_keys():
        leaf = key.rsplit(".", 1)[-1]
        assert f"`{key}`" in page or f".{leaf}`" in page, f"{key} is not in docs/configuration.md's table"


def test_the_er_diagram_is_generated_from_the_schema() -> None:
    from pipeline.docs import SCHEMA_PAGE, render_page

    text = SCHEMA_PAGE.read_text()
    assert render_page(text) == text, "docs/schema.md's ER diagram is stale: run `make docs`"
    assert "songplays {" in text and "varchar songplay_id PK" in text


def test_the_readme_stays_short_and_every_page_it_links_exists() -> None:
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200, "README.md is for users and stays short: depth goes to docs/"
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    assert "docs/operations.md" in links
    for link in links:
        assert (ROOT / link).exists(), f"README.md links {link}, which does not exist"


def test_readme_mentions_every_make_target() -> None:
    import re

    targets = re.findall(r"^([a-z-]+):.*## ", (ROOT / "Makefile").read_text(), flags=re.M)
    readme = (ROOT / "README.md").read_text()
    assert set(targets) >= {"run", "test", "bench", "docs", "report", "notebooks"}
    for target in targets:
        assert f"`{target}`" in readme or f"make {target}" in readme, f"make {target} is not in README.md"


def test_every_configurable_target_is_a_registered_destination() -> None:
    from pipeline.core.config import TARGETS
    from pipeline.load import DESTINATIONS

    assert set(TARGETS) == set(DESTINATIONS)


def test_the_shipped_config_points_at_the_demo_folders_a_fresh_clone_fills() -> None:
    """``make run`` on a fresh clone generates the demo data only where config.yaml points: the two must agree."""
    from pipeline.core.config import DEMO_ROOT

    cfg = load_config(ROOT / "config.yaml")
    assert DEMO_ROOT == ROOT / "data" / "demo"
    assert (Path(cfg.source.song_data), Path(cfg.source.log_data)) == (DEMO_ROOT / "song_data", DEMO_ROOT / "log_data")


def test_the_ray_engine_ships_the_whole_package() -> None:
    from pipeline.run.distributed import PACKAGE

    assert PACKAGE == ROOT / "pipeline" and (PACKAGE / "cli.py").exists()
