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
def clean(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """The reference: one run over the whole sample into a fresh warehouse, every star table sorted by key."""
    from tests.support.helpers import read_tables, run_json, write_config

    tmp = tmp_path_factory.mktemp("clean")
    run_json(write_config(tmp, sample_dir / "song_data", sample_dir / "log_data"))
    return read_tables(tmp / "wh.duckdb")


@pytest.fixture
def sample_copy(sample_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample, for tests that damage or add files."""
    dst = tmp_path / "src"
    shutil.copytree(sample_dir, dst)
    return dst
