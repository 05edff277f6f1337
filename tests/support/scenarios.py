"""Deliveries over several nights, and the one full run they must end equal to.

A ``Dataset`` is a set of source files, each with one or two versions (a file re-delivered with changed
content). It carries what makes nightly loading hard: an artist's song files disagreeing on location and
spelling, a song_id in two files, plays of catalogue songs whose song file arrives nights later, the same event
in two files with different content, one user's events in the same millisecond in two files, users changing
level, logged-out events. A ``Plan`` delivers those files over nights in some order, deleting some after they
were loaded (a file that leaves the source deletes nothing). ``expected_folder`` writes what one full run reads:
the latest delivered version of every file ever delivered.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DAY_MS = 86_400_000
START_MS = 1_541_030_400_000  # 2018-11-01T00:00:00Z


@dataclass
class Dataset:
    # relative path -> versions (bytes), delivered in this order
    files: dict[str, list[bytes]] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    kind: str  # "deliver" or "delete"
    path: str
    version: int = 0


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()  # no final newline, like the real files


def build(
    seed: int,
    artists: int = 3,
    songs: int = 6,
    days: int = 4,
    users: int = 4,
    events_per_day: int = 12,
    duplicates: bool = True,
    same_ms: bool = True,
    redeliver: bool = True,
) -> Dataset:
    rng = np.random.default_rng(seed)
    ds = Dataset()
    # Songs: an artist's files spell its name two ways and disagree on its location.
    catalogue: list[tuple[str, str, float]] = []
    for i in range(songs):
        a = i % artists
        spelled = f"Artist {a}" if rng.random() < 0.6 else f"ARTIST {a}"
        located = rng.random() < 0.5
        rec = {
            "num_songs": 1,
            "artist_id": f"AR{a:016d}",
            "artist_latitude": float(40 + a) if located else None,
            "artist_longitude": float(-70 - a) if located else None,
            "artist_location": f"City {a}" if located else "",
            "artist_name": spelled,
            "song_id": f"SO{i:016d}",
            "title": f"Song {i}",
            "duration": round(float(rng.uniform(100, 300)), 5),
            "year": int(rng.choice([0, 1999, 2005])),
        }
        catalogue.append((rec["title"], spelled, rec["duration"]))
        versions = [json.dumps(rec).encode()]
        if redeliver and rng.random() < 0.3:
            versions.append(json.dumps({**rec, "duration": round(rec["duration"] + 1, 5), "year": 2010}).encode())
        ds.files[f"song_data/A/B/C/TR{i:016d}.json"] = versions
    if songs and duplicates:
        # One recording on a second release: the same song_id in another file, with other values.
        rec = json.loads(ds.files["song_data/A/B/C/TR0000000000000000.json"][0])
        ds.files["song_data/A/B/D/TRDUPLICATE000000.json"] = [
            json.dumps({**rec, "title": rec["title"] + " (remaster)", "year": 2011}).encode()
        ]

    # Events: users change level now and then; half the plays are of catalogue songs.
    level = {u: str(rng.choice(["free", "paid"])) for u in range(1, users + 1)}
    session = 0
    by_day: list[list[dict[str, Any]]] = []
    for d in range(days):
        events: list[dict[str, Any]] = []
        ts = START_MS + d * DAY_MS + int(rng.integers(0, 3_000))
        sessions = max(1, events_per_day // 4)
        for k in range(sessions):
            session += 1
            # The day's first session is user 1's, and so is its last, which starts seconds before midnight and
            # runs into the next day: the next day's file then overlaps this one in time, as eventsim's do.
            u = 1 if k in (0, sessions - 1) else int(rng.integers(1, users + 1))
            if k == sessions - 1 and sessions > 1:
                ts = START_MS + (d + 1) * DAY_MS - int(rng.integers(1_000, 4_000))
            logged_out = rng.random() < 0.1
            for item in range(4):
                ts += int(rng.integers(0, 3)) * 1000  # some events share a millisecond
                if rng.random() < 0.15:
                    level[u] = "paid" if level[u] == "free" else "free"
                play = rng.random() < 0.7 and not logged_out
                song = catalogue[int(rng.integers(len(catalogue)))] if catalogue and rng.random() < 0.5 else None
                events.append(
                    {
                        "artist": (song[1] if song else f"Unknown {int(rng.integers(3))}") if play else None,
                        "auth": "Logged Out" if logged_out else "Logged In",
                        "firstName": None if logged_out else f"First{u}",
                        "gender": None if logged_out else "F",
                        "itemInSession": item,
                        "lastName": None if logged_out else f"Last{u}",
                        "length": (song[2] if song else 200.5) if play else None,
                        "level": level[u],
                        "location": None if logged_out else f"Town {u}",
                        "method": "PUT",
                        "page": "NextSong" if play else "Home",
                        "registration": None if logged_out else 1.5e12,
                        "sessionId": session,
                        "song": (song[0] if song else f"Unknown song {int(rng.integers(3))}") if play else None,
                        "status": 200,
                        "ts": ts,
                        "userAgent": None if logged_out else "Mozilla/5.0",
                        "userId": "" if logged_out else str(u),
                    }
                )
        by_day.append(events)
        path = f"log_data/2018/11/2018-11-{d + 1:02d}-events.json"
        versions = [_jsonl(events)]
        if redeliver and rng.random() < 0.4:
            # The upstream export is fixed: some events removed, some levels corrected. Never most of the day: a
            # re-delivery that loses over half of what it replaces is held back (``rejects.max_shrink``).
            kept: list[tuple[int, dict[str, Any]]] = []
            dropped: list[tuple[int, dict[str, Any]]] = []
            for i, e in enumerate(events):
                if rng.random() < 0.8:
                    kept.append(
                        (i, {**e, "level": "paid" if e["level"] == "free" else "free"} if rng.random() < 0.2 else e)
                    )
                else:
                    dropped.append((i, e))
            while dropped and 2 * len(kept) < len(events):
                kept.append(dropped.pop())
            versions.append(_jsonl([e for _, e in sorted(kept, key=lambda x: x[0])]))
        ds.files[path] = versions
    extra: list[dict[str, Any]] = []
    for events in by_day:
        known = [e for e in events if e["userId"]]
        if duplicates and known:
            # The same event in a second file: once identical, once with another level and a later ts.
            e = known[int(rng.integers(len(known)))]
            extra.append(dict(e))
            f = known[int(rng.integers(len(known)))]
            extra.append({**f, "level": "paid" if f["level"] == "free" else "free", "ts": f["ts"] + 1000})
        if same_ms and known:
            # The same user in the same millisecond, in another session, in another file.
            e = known[int(rng.integers(len(known)))]
            session += 1
            extra.append({**e, "sessionId": session, "itemInSession": 0, "level": "paid"})
    if extra:
        ds.files["log_data/2018/11/2018-11-30-late-export-events.json"] = [_jsonl(extra)]
    return ds


def plan(ds: Dataset, rng: np.random.Generator, deletions: bool = True) -> list[list[Action]]:
    """The files delivered in a random order over a random number of nights; versions in order; some files
    deleted from the source after they were delivered."""
    actions: list[tuple[float, Action]] = []
    for path, versions in ds.files.items():
        t = float(rng.random())
        for v in range(len(versions)):
            actions.append((t, Action("deliver", path, v)))
            t += float(rng.random())
        if deletions and rng.random() < 0.2:
            actions.append((t + float(rng.random()), Action("delete", path)))
    ordered = [a for _, a in sorted(actions, key=lambda x: x[0])]
    n = int(rng.integers(1, min(5, len(ordered)) + 1))
    cuts = sorted(rng.choice(np.arange(1, len(ordered)), size=n - 1, replace=False)) if n > 1 else []
    return [list(part) for part in np.split(np.array(ordered, dtype=object), cuts)]


class Source:
    """A source folder that files are delivered to and deleted from, with strictly increasing mtimes."""

    def __init__(self, root: Path):
        self.root = root
        self.clock = 1_700_000_000_000_000_000

    def apply(self, ds: Dataset, actions: list[Action]) -> None:
        for a in actions:
            path = self.root / a.path
            if a.kind == "delete":
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(ds.files[a.path][a.version])
            self.clock += 1_000_000_000
            os.utime(path, ns=(self.clock, self.clock))


def expected_folder(ds: Dataset, nights: list[list[Action]], root: Path) -> Path:
    """The latest version of every file a nightly run found in the source: what one full run must read.

    (A file delivered and deleted again before any run looked was never delivered, as far as anyone can tell.)
    """
    present: dict[str, int] = {}
    latest: dict[str, int] = {}
    for night in nights:
        for a in night:
            if a.kind == "deliver":
                present[a.path] = a.version
            else:
                present.pop(a.path, None)
        latest.update(present)
    shutil.rmtree(root, ignore_errors=True)
    for path, version in latest.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(ds.files[path][version])
    for sub in ("song_data", "log_data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def globs(folder: Path) -> tuple[str, str]:
    """The song and log file patterns of a folder written by ``expected_folder`` (for the SQL oracle)."""
    return str(folder / "song_data" / "*" / "*" / "*" / "*.json"), str(folder / "log_data" / "*" / "*" / "*.json")


def hard_case() -> tuple[Dataset, list[list[Action]]]:
    """One fixed scenario with every feature at once: at least three nights, a re-delivered log file and song
    file, a file deleted after loading, songs arriving after their plays, duplicates and same-ms events."""
    for seed in range(1000):
        ds = build(seed, days=4)
        nights = plan(ds, np.random.default_rng(seed))
        flat = [a for night in nights for a in night]
        first_song = next(i for i, a in enumerate(flat) if a.path.startswith("song_data"))
        first_log = next(i for i, a in enumerate(flat) if a.path.startswith("log_data"))
        if (
            len(nights) >= 3
            and any(a.kind == "delete" for a in flat)
            and any(a.version == 1 and a.path.startswith("log_data") for a in flat)
            and any(a.version == 1 and a.path.startswith("song_data") for a in flat)
            and first_log < first_song
        ):
            return ds, nights
    raise AssertionError("no seed below 1000 gives every feature")


class S3Source:
    """The same deliveries into a bucket (deletions included), for the S3 source path."""

    def __init__(self, client: Any, bucket: str, prefix: str):
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def apply(self, ds: Dataset, actions: list[Action]) -> None:
        for a in actions:
            key = f"{self.prefix}/{a.path}"
            if a.kind == "delete":
                self.client.delete_object(Bucket=self.bucket, Key=key)
            else:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=ds.files[a.path][a.version])
