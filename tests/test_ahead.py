"""Sources listed while the run starts: the same listing the run would make, and its errors left to the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ahead import Listings, list_ahead
from pipeline.config import DEMO_ROOT, load_config
from pipeline.discover import SourceError, discover

from .helpers import write_config


def test_a_listing_made_ahead_is_the_listing_and_is_used_once(sample_dir: Path) -> None:
    url = str(sample_dir / "log_data")
    listings = Listings([url], {})
    first = listings.first_attempt(url)
    assert first is not None
    _, files = first()
    assert files == discover(url)[1] and len(files) == 30
    assert listings.first_attempt(url) is None, "taken once: a retry lists again"
    assert listings.first_attempt(str(sample_dir / "song_data")) is None


def test_an_error_met_ahead_is_raised_by_the_first_attempt(tmp_path: Path) -> None:
    url = str(tmp_path / "missing")
    first = Listings([url], {}).first_attempt(url)
    assert first is not None
    with pytest.raises(SourceError, match="not found"):
        first()


def test_the_demo_folders_are_not_listed_before_the_demo_is_generated(tmp_path: Path, sample_dir: Path) -> None:
    demo = write_config(tmp_path, DEMO_ROOT / "song_data", DEMO_ROOT / "log_data", demo={"generate_if_empty": True})
    assert list_ahead(load_config(demo)) is None
    elsewhere = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    listings = list_ahead(load_config(elsewhere))
    assert listings is not None and listings.first_attempt(str(sample_dir / "song_data")) is not None
