"""A deterministic synthetic Sparkify dataset, shaped like the real one.

The repository ships no bulk data; this writes the demo dataset for ``make run`` and the large ones for
``make bench``. It reproduces what the pipeline must cope with in the real sample: the folder layouts,
field names and types, files with no final newline, logged-out events with ``userId`` "", NextSong at
about 80% of events, users who upgrade and downgrade, plays that match a catalogue song exactly (title,
artist and duration) beside plays of songs the catalogue lacks, artists with several songs, ``year`` 0
and empty artist locations. The same seed and sizes always give byte-identical files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson

log = logging.getLogger(__name__)

_ALNUM = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
_WORDS = [
    "love",
    "night",
    "heart",
    "fire",
    "rain",
    "dance",
    "blue",
    "dream",
    "summer",
    "city",
    "road",
    "home",
    "light",
    "wild",
    "gold",
    "river",
    "moon",
    "sweet",
    "broken",
    "electric",
    "silent",
    "lonely",
    "golden",
    "midnight",
    "shadow",
    "ocean",
    "thunder",
    "paper",
    "velvet",
    "crystal",
    "echo",
    "stone",
    "glass",
    "winter",
    "morning",
    "honey",
    "desert",
    "neon",
    "paradise",
    "storm",
    "garden",
    "mirror",
]
_FIRST = [
    "Lily",
    "Jacob",
    "Ava",
    "Liam",
    "Emma",
    "Noah",
    "Mia",
    "Ethan",
    "Sofia",
    "Lucas",
    "Chloe",
    "Aiden",
    "Kaylee",
    "Ryan",
    "Tegan",
    "Jayden",
]
_LAST = [
    "Koch",
    "Klein",
    "Smith",
    "Garcia",
    "Lynch",
    "Cruz",
    "Bell",
    "Moore",
    "Levy",
    "Harrell",
    "Robinson",
    "Jones",
    "Perez",
    "Chen",
    "Olsen",
]
_CITIES = [
    "Chicago-Naperville-Elgin, IL-IN-WI",
    "San Francisco-Oakland-Hayward, CA",
    "Atlanta-Sandy Springs-Roswell, GA",
    "Dallas-Fort Worth-Arlington, TX",
    "Tampa-St. Petersburg-Clearwater, FL",
    "New York-Newark-Jersey City, NY-NJ-PA",
    "Portland-South Portland, ME",
    "Lansing-East Lansing, MI",
    "Phoenix-Mesa-Scottsdale, AZ",
    "Houston-The Woodlands, TX",
]
_ARTIST_PLACES = ["London, England", "Chicago, IL", "Hamburg, Germany", "Detroit, MI", "Kingston, Jamaica"]
_AGENTS = [
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.143 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/36.0.1985.125 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; WOW64; Trident/6.0)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) "
    "Version/7.0 Mobile/11D257 Safari/9537.53",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Ubuntu Chromium/36.0.1985.125 "
    "Chrome/36.0.1985.125 Safari/537.36",
]
# Pages other than NextSong for logged-in users, with eventsim-like weights.
_OTHER_PAGES = [
    ("Home", 30),
    ("Thumbs Up", 20),
    ("Add to Playlist", 10),
    ("Add Friend", 7),
    ("Roll Advert", 8),
    ("Logout", 6),
    ("Thumbs Down", 5),
    ("Settings", 3),
    ("Downgrade", 3),
    ("Help", 3),
    ("Upgrade", 1),
    ("About", 1),
    ("Save Settings", 1),
    ("Error", 1),
    ("Submit Upgrade", 1),
    ("Submit Downgrade", 1),
]
_LOGGED_OUT_PAGES = [("Home", 50), ("Login", 40), ("About", 5), ("Help", 5)]
_START = datetime(2018, 11, 1, tzinfo=UTC)


# Letters some names and titles carry accented, so the data exercises the logs' double encoding.
_ACCENTED = str.maketrans({"a": "å", "e": "é", "i": "í", "o": "ö", "u": "ü", "n": "ñ", "c": "ç"})
_ACCENT_SHARE = 0.08


def _accent(names: list[str], chosen: np.ndarray) -> list[str]:
    return [n.translate(_ACCENTED) if c else n for n, c in zip(names, chosen, strict=True)]


def as_the_logs_carry(text: str | None) -> str | None:
    """Text as the real event logs carry it: UTF-8 read as Latin-1, twice (``Beyoncé`` -> ``BeyoncÃ\x83Â©``).

    The song files carry correct text; ``repair.py`` undoes this.
    """
    if text is None or text.isascii():
        return text
    return text.encode("utf-8").decode("latin-1").encode("utf-8").decode("latin-1")


@dataclass(frozen=True)
class GenerateResult:
    song_files: int
    log_files: int
    events: int
    bytes_written: int


def _ids(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    chars = _ALNUM[rng.integers(0, len(_ALNUM), size=(n, 16))]
    out = [prefix + "".join(row) for row in chars]
    # Uniqueness matters more than realism here; collisions at 36^16 are only theoretical.
    return out


def _title(rng: np.random.Generator, n: int) -> list[str]:
    k = rng.integers(1, 4, size=n)
    words = rng.integers(0, len(_WORDS), size=(n, 3))
    return [" ".join(_WORDS[w].title() for w in words[i, : k[i]]) for i in range(n)]


def _weights(pairs: list[tuple[str, int]]) -> tuple[list[str], np.ndarray]:
    names = [p for p, _ in pairs]
    w = np.array([x for _, x in pairs], dtype=float)
    return names, w / w.sum()


def generate(
    out_songs: Path, out_logs: Path, songs: int, events: int, seed: int = 42, days: int = 30
) -> GenerateResult:
    """Write ``songs`` song files under ``out_songs`` and ``events`` events, one file a day, under ``out_logs``."""
    rng = np.random.default_rng(seed)
    written = 0

    # ---- songs and artists: about 4 songs for every 3 artists, a few artists with many songs.
    n_artists = max(1, (songs * 3) // 4)
    artist_ids = _ids(rng, "AR", n_artists)
    artist_names = [n for n in _title(rng, n_artists)]
    has_place = rng.random(n_artists) < 0.45
    places = rng.integers(0, len(_ARTIST_PLACES), n_artists)
    lat = np.round(rng.uniform(-40, 60, n_artists), 5)
    lon = np.round(rng.uniform(-120, 30, n_artists), 5)
    song_artist = np.minimum(rng.zipf(1.6, songs) - 1, n_artists - 1) if songs else np.zeros(0, int)
    song_artist = np.where(rng.random(songs) < 0.5, rng.integers(0, n_artists, songs), song_artist)
    song_ids = _ids(rng, "SO", songs)
    track_ids = _ids(rng, "TR", songs)
    titles = _title(rng, songs)
    durations = np.round(rng.uniform(60.0, 600.0, songs), 5)
    years = np.where(rng.random(songs) < 0.5, 0, rng.integers(1955, 2011, songs))
    # A separate stream, so everything else is what the same seed always gave.
    accents = np.random.default_rng([seed, 1])
    artist_names = _accent(artist_names, accents.random(n_artists) < _ACCENT_SHARE)
    titles = _accent(titles, accents.random(songs) < _ACCENT_SHARE)
    for i in range(songs):
        a = int(song_artist[i])
        rec = {
            "num_songs": 1,
            "artist_id": artist_ids[a],
            "artist_latitude": float(lat[a]) if has_place[a] else None,
            "artist_longitude": float(lon[a]) if has_place[a] else None,
            "artist_location": _ARTIST_PLACES[places[a]] if has_place[a] else "",
            "artist_name": artist_names[a],
            "song_id": song_ids[i],
            "title": titles[i],
            "duration": float(durations[i]),
            "year": int(years[i]),
        }
        tr = track_ids[i]
        folder = out_songs / tr[2] / tr[3] / tr[4]
        folder.mkdir(parents=True, exist_ok=True)
        data = orjson.dumps(rec)
        (folder / f"{tr}.json").write_bytes(data)
        written += len(data)

    # ---- users: fixed attributes, a starting level, and for some a change of level mid-period.
    n_users = max(10, events // 100)
    first = rng.integers(0, len(_FIRST), n_users)
    last = rng.integers(0, len(_LAST), n_users)
    gender = np.where(rng.random(n_users) < 0.5, "F", "M")
    city = rng.integers(0, len(_CITIES), n_users)
    agent = rng.integers(0, len(_AGENTS), n_users)
    registration = (_START.timestamp() * 1000 - rng.integers(1, 400, n_users) * 86_400_000 + 795_796).astype(float)
    start_paid = rng.random(n_users) < 0.3
    period_ms = days * 86_400_000
    change_at = np.where(rng.random(n_users) < 0.15, rng.integers(0, period_ms, n_users), np.iinfo(np.int64).max)
    user_weight = rng.zipf(1.8, n_users).astype(float)
    user_weight /= user_weight.sum()
    accented_user = accents.random(n_users) < _ACCENT_SHARE
    first_names = [
        _FIRST[i].translate(_ACCENTED) if a else _FIRST[i] for i, a in zip(first, accented_user, strict=True)
    ]
    cities = [_CITIES[i].translate(_ACCENTED) if a else _CITIES[i] for i, a in zip(city, accented_user, strict=True)]
    last_names = [_LAST[i].translate(_ACCENTED) if a else _LAST[i] for i, a in zip(last, accented_user, strict=True)]

    # Songs that plays refer to: catalogue songs (exact match) and songs the catalogue does not have.
    n_unknown = max(50, events // 20)
    unk_titles = _title(rng, n_unknown)
    unk_artists = _title(rng, n_unknown)
    unk_len = np.round(rng.uniform(60.0, 600.0, n_unknown), 5)
    unk_titles = _accent(unk_titles, accents.random(n_unknown) < _ACCENT_SHARE)
    unk_artists = _accent(unk_artists, accents.random(n_unknown) < _ACCENT_SHARE)
    other_pages, other_w = _weights(_OTHER_PAGES)
    out_pages, out_w = _weights(_LOGGED_OUT_PAGES)

    per_day = np.full(days, events // days)
    per_day[: events % days] += 1
    session_id = 0
    for day in range(days):
        n = int(per_day[day])
        day_start = _START + timedelta(days=day)
        path = out_logs / f"{day_start:%Y}" / f"{day_start:%m}" / f"{day_start:%Y-%m-%d}-events.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if n == 0:
            path.write_bytes(b"")
            continue
        # Sessions of geometric length, about 20 events each; 3% are logged-out visits.
        lengths: list[int] = []
        total = 0
        while total < n:
            size = int(min(rng.geometric(1 / 20), n - total))
            lengths.append(size)
            total += size
        n_sess = len(lengths)
        sess_len = np.array(lengths)
        sess_user = rng.choice(n_users, size=n_sess, p=user_weight)
        logged_out = rng.random(n_sess) < 0.03
        sess_start = rng.integers(0, 86_400_000 - 3_600_000, n_sess)
        sess_ids = np.arange(session_id, session_id + n_sess)
        session_id += n_sess
        idx = np.repeat(np.arange(n_sess), sess_len)
        item = np.arange(n) - np.repeat(np.cumsum(sess_len) - sess_len, sess_len)
        gaps = rng.integers(150, 300, n) * 1000
        gaps[item == 0] = 0
        within = np.cumsum(gaps) - np.repeat((np.cumsum(gaps) - gaps)[np.cumsum(sess_len) - sess_len], sess_len)
        # Every ts ends in 796 ms, as in the real logs.
        ts = (int(day_start.timestamp() * 1000) + sess_start[idx] + within) // 1000 * 1000 + 796
        out_event = logged_out[idx]
        user = sess_user[idx]
        rel = ts - int(_START.timestamp() * 1000)
        paid = np.where(rel >= change_at[user], ~start_paid[user], start_paid[user])
        is_play = (~out_event) & (rng.random(n) < 0.82)
        page_other = np.array(other_pages)[rng.choice(len(other_pages), n, p=other_w)]
        page_out = np.array(out_pages)[rng.choice(len(out_pages), n, p=out_w)]
        pick_catalogue = rng.random(n) < 0.1 if songs else np.zeros(n, bool)
        cat_song = rng.integers(0, max(songs, 1), n)
        unk_song = np.minimum(rng.zipf(1.3, n) - 1, n_unknown - 1)
        order = np.argsort(ts, kind="stable")
        lines = []
        for j in order:
            u = int(user[j])
            out = bool(out_event[j])
            play = bool(is_play[j])
            song: str | None = None
            artist: str | None = None
            length: float | None = None
            if play:
                if pick_catalogue[j]:
                    s = int(cat_song[j])
                    song, artist, length = titles[s], artist_names[int(song_artist[s])], float(durations[s])
                else:
                    s = int(unk_song[j])
                    song, artist, length = unk_titles[s], unk_artists[s], float(unk_len[s])
            page = "NextSong" if play else str(page_out[j] if out else page_other[j])
            rec = {
                "artist": as_the_logs_carry(artist),
                "auth": "Logged Out" if out else "Logged In",
                "firstName": None if out else as_the_logs_carry(first_names[u]),
                "gender": None if out else str(gender[u]),
                "itemInSession": int(item[j]),
                "lastName": None if out else as_the_logs_carry(last_names[u]),
                "length": length,
                "level": "paid" if paid[j] else "free",
                "location": None if out else as_the_logs_carry(cities[u]),
                "method": "PUT" if play or page in ("Login", "Logout") else "GET",
                "page": page,
                "registration": None if out else float(registration[u]),
                "sessionId": int(sess_ids[idx[j]]),
                "song": as_the_logs_carry(song),
                "status": 307 if page in ("Logout", "Login") else (404 if page == "Error" else 200),
                "ts": int(ts[j]),
                "userAgent": None if out else _AGENTS[agent[u]],
                "userId": "" if out else str(u + 1),
            }
            lines.append(orjson.dumps(rec))
        data = b"\n".join(lines)  # no final newline, like the real files
        path.write_bytes(data)
        written += len(data)
    log.info("generated %d song files and %d events over %d days", songs, events, days)
    return GenerateResult(song_files=songs, log_files=days, events=events, bytes_written=written)


def is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(p.suffix == ".json" for p in folder.rglob("*.json"))
