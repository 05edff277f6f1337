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


@dataclass
class _Catalogue:
    """Songs and their artists; about 4 songs for every 3 artists, a few artists with many songs."""

    artist_ids: list[str]
    artist_names: list[str]
    has_place: np.ndarray
    places: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    song_artist: np.ndarray
    song_ids: list[str]
    track_ids: list[str]
    titles: list[str]
    durations: np.ndarray
    years: np.ndarray


def _catalogue(rng: np.random.Generator, accents: np.random.Generator, songs: int) -> _Catalogue:
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
    artist_names = _accent(artist_names, accents.random(n_artists) < _ACCENT_SHARE)
    titles = _accent(titles, accents.random(songs) < _ACCENT_SHARE)
    return _Catalogue(
        artist_ids,
        artist_names,
        has_place,
        places,
        lat,
        lon,
        song_artist,
        song_ids,
        track_ids,
        titles,
        durations,
        years,
    )


def _write_songs(out_songs: Path, c: _Catalogue) -> int:
    """One file per song, in the real data's ``A/B/C/TR....json`` layout; returns the bytes written."""
    written = 0
    for i, tr in enumerate(c.track_ids):
        a = int(c.song_artist[i])
        rec = {
            "num_songs": 1,
            "artist_id": c.artist_ids[a],
            "artist_latitude": float(c.lat[a]) if c.has_place[a] else None,
            "artist_longitude": float(c.lon[a]) if c.has_place[a] else None,
            "artist_location": _ARTIST_PLACES[c.places[a]] if c.has_place[a] else "",
            "artist_name": c.artist_names[a],
            "song_id": c.song_ids[i],
            "title": c.titles[i],
            "duration": float(c.durations[i]),
            "year": int(c.years[i]),
        }
        folder = out_songs / tr[2] / tr[3] / tr[4]
        folder.mkdir(parents=True, exist_ok=True)
        data = orjson.dumps(rec)
        (folder / f"{tr}.json").write_bytes(data)
        written += len(data)
    return written


@dataclass
class _Users:
    """Fixed attributes, a starting level, and for some a change of level mid-period."""

    n: int
    gender: np.ndarray
    agent: np.ndarray
    registration: np.ndarray
    start_paid: np.ndarray
    change_at: np.ndarray
    weight: np.ndarray
    first_names: list[str]
    last_names: list[str]
    cities: list[str]


def _users(rng: np.random.Generator, accents: np.random.Generator, events: int, days: int) -> _Users:
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
    weight = rng.zipf(1.8, n_users).astype(float)
    weight /= weight.sum()
    accented = accents.random(n_users) < _ACCENT_SHARE

    def names(pool: list[str], picks: np.ndarray) -> list[str]:
        return [pool[i].translate(_ACCENTED) if a else pool[i] for i, a in zip(picks, accented, strict=True)]

    return _Users(
        n_users,
        gender,
        agent,
        registration,
        start_paid,
        change_at,
        weight,
        names(_FIRST, first),
        names(_LAST, last),
        names(_CITIES, city),
    )


@dataclass
class _Unknown:
    """Songs that plays refer to but the catalogue does not have."""

    titles: list[str]
    artists: list[str]
    lengths: np.ndarray


def _unknown(rng: np.random.Generator, accents: np.random.Generator, events: int) -> _Unknown:
    n = max(50, events // 20)
    titles, artists, lengths = _title(rng, n), _title(rng, n), np.round(rng.uniform(60.0, 600.0, n), 5)
    return _Unknown(
        _accent(titles, accents.random(n) < _ACCENT_SHARE), _accent(artists, accents.random(n) < _ACCENT_SHARE), lengths
    )


def _sessions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Session lengths adding up to ``n``: geometric, about 20 events each."""
    lengths: list[int] = []
    total = 0
    while total < n:
        size = int(min(rng.geometric(1 / 20), n - total))
        lengths.append(size)
        total += size
    return np.array(lengths)


def _day(
    rng: np.random.Generator,
    day_start: datetime,
    n: int,
    first_session: int,
    songs: int,
    c: _Catalogue,
    u: _Users,
    unknown: _Unknown,
    catalogue_share: float = 0.1,
    skew: float = 1.0,
) -> tuple[bytes, int]:
    """One day's ``n`` events as the log file's bytes, in time order; returns them and the sessions used."""
    sess_len = _sessions(rng, n)
    n_sess = len(sess_len)
    sess_user = rng.choice(u.n, size=n_sess, p=u.weight)
    logged_out = rng.random(n_sess) < 0.03  # 3% of sessions are logged-out visits
    sess_start = rng.integers(0, 86_400_000 - 3_600_000, n_sess)
    sess_ids = np.arange(first_session, first_session + n_sess)
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
    paid = np.where(rel >= u.change_at[user], ~u.start_paid[user], u.start_paid[user])
    is_play = (~out_event) & (rng.random(n) < 0.82)
    other_pages, other_w = _weights(_OTHER_PAGES)
    out_pages, out_w = _weights(_LOGGED_OUT_PAGES)
    page_other = np.array(other_pages)[rng.choice(len(other_pages), n, p=other_w)]
    page_out = np.array(out_pages)[rng.choice(len(out_pages), n, p=out_w)]
    pick_catalogue = rng.random(n) < catalogue_share if songs else np.zeros(n, bool)
    cat_song = rng.integers(0, max(songs, 1), n)
    if skew != 1.0:  # the same draws, bent toward the first songs: some songs far more played than others
        cat_song = (songs * (cat_song / max(songs, 1)) ** skew).astype(np.int64)
    unk_song = np.minimum(rng.zipf(1.3, n) - 1, len(unknown.titles) - 1)
    lines = []
    for j in np.argsort(ts, kind="stable"):
        song: tuple[str, str, float] | None = None
        if is_play[j]:
            if pick_catalogue[j]:
                s = int(cat_song[j])
                song = c.titles[s], c.artist_names[int(c.song_artist[s])], float(c.durations[s])
            else:
                s = int(unk_song[j])
                song = unknown.titles[s], unknown.artists[s], float(unknown.lengths[s])
        out = bool(out_event[j])
        page = "NextSong" if song else str(page_out[j] if out else page_other[j])
        rec = _event(u, int(user[j]), out, song, page, bool(paid[j]), int(item[j]), int(sess_ids[idx[j]]), int(ts[j]))
        lines.append(orjson.dumps(rec))
    return b"\n".join(lines), n_sess  # no final newline, like the real files


def _event(
    u: _Users,
    user: int,
    out: bool,
    song: tuple[str, str, float] | None,
    page: str,
    paid: bool,
    item: int,
    session: int,
    ts: int,
) -> dict[str, object]:
    title, artist, length = song if song else (None, None, None)
    return {
        "artist": as_the_logs_carry(artist),
        "auth": "Logged Out" if out else "Logged In",
        "firstName": None if out else as_the_logs_carry(u.first_names[user]),
        "gender": None if out else str(u.gender[user]),
        "itemInSession": item,
        "lastName": None if out else as_the_logs_carry(u.last_names[user]),
        "length": length,
        "level": "paid" if paid else "free",
        "location": None if out else as_the_logs_carry(u.cities[user]),
        "method": "PUT" if song or page in ("Login", "Logout") else "GET",
        "page": page,
        "registration": None if out else float(u.registration[user]),
        "sessionId": session,
        "song": as_the_logs_carry(title),
        "status": 307 if page in ("Logout", "Login") else (404 if page == "Error" else 200),
        "ts": ts,
        "userAgent": None if out else _AGENTS[u.agent[user]],
        "userId": "" if out else str(user + 1),
    }


def generate(
    out_songs: Path,
    out_logs: Path,
    songs: int,
    events: int,
    seed: int = 42,
    days: int = 30,
    catalogue_share: float = 0.1,
    skew: float = 1.0,
) -> GenerateResult:
    """Write ``songs`` song files under ``out_songs`` and ``events`` events, one file a day, under ``out_logs``.

    ``catalogue_share`` of the plays are of catalogue songs (the rest of songs it lacks, whose popularity is
    steep), picked evenly, or with ``skew`` above 1 the first songs far more often than the rest: the demo plays
    its catalogue as a service with a fitting catalogue would, so a first report shows a matched warehouse.

    The same seed always writes the same bytes: every draw comes from ``seed``'s stream in a fixed order, and the
    accents from a stream of their own, so adding them changed nothing else. The share and the skew change what
    the draws mean, not which are made."""
    rng = np.random.default_rng(seed)
    accents = np.random.default_rng([seed, 1])
    catalogue = _catalogue(rng, accents, songs)
    written = _write_songs(out_songs, catalogue)
    users = _users(rng, accents, events, days)
    unknown = _unknown(rng, accents, events)
    per_day = np.full(days, events // days)
    per_day[: events % days] += 1
    session = 0
    for day in range(days):
        day_start = _START + timedelta(days=day)
        path = out_logs / f"{day_start:%Y}" / f"{day_start:%m}" / f"{day_start:%Y-%m-%d}-events.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data, sessions = (
            (b"", 0)
            if per_day[day] == 0
            else _day(
                rng, day_start, int(per_day[day]), session, songs, catalogue, users, unknown, catalogue_share, skew
            )
        )
        session += sessions
        path.write_bytes(data)
        written += len(data)
    log.info("generated %d song files and %d events over %d days", songs, events, days)
    return GenerateResult(song_files=songs, log_files=days, events=events, bytes_written=written)


def is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(p.suffix == ".json" for p in folder.rglob("*.json"))
