"""The synthetic dataset is deterministic and has the oddities of the real data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.demo.generate import generate
from pipeline.extract.discover import discover
from pipeline.extract.reader import extract
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from pipeline.transform.batch import build_star


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a" / "s", tmp_path / "a" / "l", songs=50, events=500, seed=3)
    generate(tmp_path / "b" / "s", tmp_path / "b" / "l", songs=50, events=500, seed=3)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_layout_and_realism(tmp_path: Path) -> None:
    generate(tmp_path / "song_data", tmp_path / "log_data", songs=400, events=6000, seed=1)
    song_files = sorted((tmp_path / "song_data").rglob("*.json"))
    assert len(song_files) == 400
    rel = song_files[0].relative_to(tmp_path / "song_data").parts
    assert len(rel) == 4 and rel[3].startswith("TR") and rel[0:3] == tuple(rel[3][2:5])
    log_files = sorted((tmp_path / "log_data").rglob("*.json"))
    assert len(log_files) == 30 and log_files[0].name == "2018-11-01-events.json"
    assert not any(p.read_bytes().endswith(b"\n") for p in log_files + song_files[:20])

    _, sf = discover(str(tmp_path / "song_data"))
    fs, lf = discover(str(tmp_path / "log_data"))
    songs = extract(SONG_SOURCE, fs, sf)
    events = extract(LOG_SOURCE, fs, lf)
    assert songs.rejects == [] and events.rejects == []
    ev = events.frame
    assert len(ev) == 6000
    assert 0.70 < (ev["page"] == "NextSong").mean() < 0.90
    assert (ev["userId"] == "").sum() > 0
    assert (songs.frame["year"] == 0).mean() > 0.2
    assert (songs.frame["artist_location"] == "").mean() > 0.2
    assert songs.frame["artist_id"].nunique() < len(songs.frame)

    star = build_star(songs.frame, ev)
    matched = star.songplays["song_id"].notna().mean()
    assert 0.02 < matched < 0.5
    levels = ev[ev["userId"] != ""].groupby("userId")["level"].nunique()
    assert (levels > 1).sum() >= 2, "some users upgrade or downgrade"
    assert json.loads(song_files[0].read_bytes())["num_songs"] == 1
