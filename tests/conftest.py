"""Shared fixtures: the real 101-file sample, a clean run of it, and the services (``tests/support``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.support.services import aws_env, redshift, s3  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ.get("SPARKIFY_SAMPLE", ROOT.parent / "shared" / "data" / "sparkify-sample"))


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not (SAMPLE / "song_data").is_dir():
        pytest.fail(f"the real sample is missing: expected {SAMPLE} (set SPARKIFY_SAMPLE to its folder)")
    return SAMPLE


@pytest.fixture(scope="session")
def clean_warehouse(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One run over the whole sample into a fresh warehouse: its DuckDB file and its config. Tests read it (and
    may run again over it, which changes no row); none damages it."""
    from tests.support.helpers import run_json, write_config

    tmp = tmp_path_factory.mktemp("clean")
    config = write_config(tmp, sample_dir / "song_data", sample_dir / "log_data")
    run_json(config)
    return tmp / "wh.duckdb", config


@pytest.fixture(scope="session")
def clean(clean_warehouse: tuple[Path, Path]) -> dict[str, pd.DataFrame]:
    """The reference: that warehouse's star tables, each sorted by key, read before any test touches it."""
    from tests.support.helpers import read_tables

    return read_tables(clean_warehouse[0])


@pytest.fixture
def sample_copy(sample_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample, for tests that damage or add files."""
    dst = tmp_path / "src"
    shutil.copytree(sample_dir, dst)
    return dst
