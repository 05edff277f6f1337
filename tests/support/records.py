"""Made-up source records, parsed by the real extractor: what unit tests of the transforms start from."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from pipeline.extract.discover import SourceFile
from pipeline.extract.reader import extract
from pipeline.extract.records import Extracted
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE, SourceSpec


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


def window_events(events: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """What the warehouse's window read returns (``reconcile/queries.records_in_windows``), from the events
    themselves: each window's events from ``from_ts`` to ``to_ts``, and those at the first millisecond after
    it, up to ``until_ts``."""
    parts = []
    for w in windows.itertuples():
        mine = events.loc[events["userId"] == w.user_id]
        parts.append(mine.loc[(mine["ts"] >= w.from_ts) & (mine["ts"] <= w.to_ts)])
        after = mine.loc[(mine["ts"] > w.to_ts) & (mine["ts"] <= w.until_ts)]
        if len(after):
            parts.append(after.loc[after["ts"] == after["ts"].min()])
    return pd.concat(parts) if parts else events.iloc[:0]
