"""Shared fixtures: the real 101-file sample, and helpers that run the real parser on made-up records."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.extract.discover import SourceFile
from pipeline.extract.reader import extract
from pipeline.extract.records import Extracted
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE, SourceSpec

from .services import aws_env, redshift, s3  # noqa: F401  (fixtures)

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
    from .helpers import read_tables, run_json, write_config

    tmp = tmp_path_factory.mktemp("clean")
    run_json(write_config(tmp, sample_dir / "song_data", sample_dir / "log_data"))
    return read_tables(tmp / "wh.duckdb")


@pytest.fixture
def sample_copy(sample_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample, for tests that damage or add files."""
    dst = tmp_path / "src"
    shutil.copytree(sample_dir, dst)
    return dst


def parse_lines(spec: SourceSpec, files: dict[str, bytes]) -> Extracted:
    """Run the real extractor on in-memory files (name -> bytes)."""
    names = sorted(files)
    sources = [SourceFile(path=n, url=n, size=len(files[n]), version="") for n in names]
    return extract(spec, None, sources, datas=[files[n] for n in names])  # type: ignore[arg-type]


def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


def event(**kw: Any) -> dict[str, Any]:
    """A logged-in NextSong event; override any field."""
    base: dict[str, Any] = {
        "artist": "Some Artist",
        "auth": "Logged In",
        "firstName": "Ann",
        "gender": "F",
        "itemInSession": 0,
        "lastName": "Lee",
        "length": 200.5,
        "level": "free",
        "location": "Town, ST",
        "method": "PUT",
        "page": "NextSong",
        "registration": 1540991795796.0,
        "sessionId": 1,
        "song": "Some Song",
        "status": 200,
        "ts": 1541105830796,
        "userAgent": "Mozilla/5.0",
        "userId": "1",
    }
    base.update(kw)
    return base


def song(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "num_songs": 1,
        "artist_id": "ARAAAAAAAAAAAAAAAA",
        "artist_latitude": None,
        "artist_longitude": None,
        "artist_location": "",
        "artist_name": "Some Artist",
        "song_id": "SOAAAAAAAAAAAAAAAA",
        "title": "Some Song",
        "duration": 200.5,
        "year": 2001,
    }
    base.update(kw)
    return base


def events_frame(*records: dict[str, Any], per_file: int | None = None) -> pd.DataFrame:
    recs = list(records)
    n = per_file or len(recs) or 1
    files = {f"log_data/2018/11/f{i:03d}.json": jsonl(recs[i : i + n]) for i in range(0, len(recs), n)}
    return parse_lines(LOG_SOURCE, files).frame


def songs_frame(*records: dict[str, Any]) -> pd.DataFrame:
    files = {f"song_data/A/A/A/TR{i:016d}.json": json.dumps(r).encode() for i, r in enumerate(records)}
    return parse_lines(SONG_SOURCE, files).frame
