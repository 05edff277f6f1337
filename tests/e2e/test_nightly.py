"""SPEC.md's "Runs over time": however files arrive over nights, the tables end as one full run leaves them.

Hypothesis draws a small dataset with every hard feature (``scenarios.build``), delivers its files over a
random number of nights in a random order, re-delivering some with changed content and deleting some from the
source, and runs the pipeline after each night with a random batch size. The warehouse must then equal, row
for row in every table (and the kept records), one run over the latest version of every file ever delivered.
Runs are in-process through ``runner.run``, the function the CLI calls.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.config import load_config
from pipeline.core.schema import DERIVED, RECORDS
from pipeline.run.runner import RunOptions, run
from tests.support import scenarios, sql_oracle
from tests.support.helpers import assert_same_tables, read_tables, run_here, write_config, write_sources
from tests.support.records import event

BATCH_MB = [0.001, 0.004, 0.02, 256]


def run_nights(
    root: Path, ds: scenarios.Dataset, nights: list[list[scenarios.Action]], batch_mb: list[float], workers: list[int]
) -> Path:
    source = scenarios.Source(root / "src")
    (root / "src" / "song_data").mkdir(parents=True)
    (root / "src" / "log_data").mkdir(parents=True)
    for night, size, n in zip(nights, batch_mb, workers, strict=True):
        source.apply(ds, night)
        config = write_config(
            root, root / "src" / "song_data", root / "src" / "log_data", source={"batch_mb": size}, run={"workers": n}
        )
        summary = run(load_config(config), RunOptions())
        assert summary.status == "succeeded"
    return root / "wh.duckdb"


def full_run(root: Path, folder: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    run(load_config(write_config(root, folder / "song_data", folder / "log_data")), RunOptions())
    return root / "wh.duckdb"


def records(db: Path, root: Path) -> dict[str, pd.DataFrame]:
    """The kept source records, with each file named relative to its source folder, and what is derived from them
    beside the star (the song lookup)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for t in RECORDS:
            frame = con.execute(f'SELECT * FROM "{t.name}"').df()
            frame["file"] = frame["file"].str.replace(str(root), "", regex=False)
            out[t.name] = frame.sort_values(["file", "line"]).reset_index(drop=True)
        for t in DERIVED:
            frame = con.execute(f'SELECT * FROM "{t.name}"').df()
            out[t.name] = frame.sort_values(list(t.primary_key)).reset_index(drop=True)
        return out
    finally:
        con.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    days=st.integers(1, 4),
    duplicates=st.booleans(),
    same_ms=st.booleans(),
    redeliver=st.booleans(),
    order=st.integers(0, 2**31 - 1),
)
def test_any_delivery_over_nights_ends_equal_to_one_full_run(
    seed: int, days: int, duplicates: bool, same_ms: bool, redeliver: bool, order: int
) -> None:
    ds = scenarios.build(seed, days=days, duplicates=duplicates, same_ms=same_ms, redeliver=redeliver)
    rng = np.random.default_rng(order)
    nights = scenarios.plan(ds, rng)
    sizes = [float(rng.choice(BATCH_MB)) for _ in nights]
    # Each night in this process alone, or with its batches side by side in three worker processes.
    workers = [int(rng.choice([1, 3])) for _ in nights]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nightly = run_nights(root / "nightly", ds, nights, sizes, workers)
        expected = scenarios.expected_folder(ds, nights, root / "expected")
        once = full_run(root / "once", expected)
        assert_same_tables(read_tables(nightly), read_tables(once))
        # ...and that one run follows SPEC.md's rules, by an implementation that shares no code with it.
        sql_oracle.assert_matches(read_tables(once), *scenarios.globs(expected))
        assert_same_tables(records(nightly, root / "nightly" / "src"), records(once, root / "expected"))


@pytest.mark.parametrize("nights", [1, 2])
def test_a_session_past_midnight_keeps_every_level_change(tmp_path: Path, nights: int) -> None:
    """Day 1's file holds a session running past midnight; day 2's file starts before it ends. The two files
    overlap in time, so neither file's own periods say where the level changed: the load reads that stretch.

    The change back to free at 00:00:03 is no change within day 2's file (free, free, free) and must still be
    found: it is the first event after the overlap. In one night the two files are two batches (1.2 KB each)."""
    midnight = scenarios.START_MS + scenarios.DAY_MS
    day1 = [
        event(userId="1", sessionId=1, itemInSession=i, ts=midnight + dt, level=lv)
        for i, (dt, lv) in enumerate([(-2000, "free"), (2000, "paid")])
    ]
    day2 = [
        event(userId="1", sessionId=2, itemInSession=i, ts=midnight + dt, level="free")
        for i, dt in enumerate([1000, 3000, 4000])
    ]
    src = tmp_path / "src"
    config = write_config(tmp_path, src / "song_data", src / "log_data", source={"batch_mb": 0.0012})
    write_sources(src, [], {"2018-11-01-events.json": day1})
    if nights == 2:
        run_here(config)
    write_sources(src, [], {"2018-11-02-events.json": day2})
    summary = run_here(config)
    assert summary.reconciled["users_windows"] == 1
    levels = read_tables(tmp_path / "wh.duckdb")["user_levels"]
    at = [pd.Timestamp(midnight + dt, unit="ms") for dt in (-2000, 2000, 3000)]
    assert levels[["level", "valid_from"]].values.tolist() == [["free", at[0]], ["paid", at[1]], ["free", at[2]]]


D = scenarios.START_MS + scenarios.DAY_MS  # 2018-11-02T00:00:00Z
SETTLED_DUPLICATES = {
    # One event in two files, settled on night 2 (the later ts wins); night 3 back-fills an event into the
    # same stretch of time, which is then read back: the settled duplicate must not count twice.
    "interleaving": {
        "2018-11-02-events.json": [
            event(userId="1", sessionId=1, itemInSession=0, ts=D, level="free"),
            event(userId="1", sessionId=1, itemInSession=1, ts=D + 1000, level="paid"),
            event(userId="1", sessionId=1, itemInSession=2, ts=D + 5000, level="free"),
        ],
        "2018-11-03-late-events.json": [event(userId="1", sessionId=1, itemInSession=1, ts=D + 2000, level="free")],
        "2018-11-01-events.json": [event(userId="1", sessionId=9, itemInSession=0, ts=D + 500, level="free")],
    },
    # The same, at one millisecond: the duplicate's winner (paid, the greater) is the user's latest event; night
    # 3 brings another event in that millisecond, which loses the tie on its session.
    "same millisecond": {
        "2018-11-02-events.json": [
            event(userId="1", sessionId=5, itemInSession=0, ts=D - 9000, level="paid"),
            event(userId="1", sessionId=5, itemInSession=1, ts=D, level="paid"),
        ],
        "2018-11-03-late-events.json": [event(userId="1", sessionId=5, itemInSession=1, ts=D, level="free")],
        "2018-11-01-events.json": [event(userId="1", sessionId=2, itemInSession=0, ts=D, level="free")],
    },
}


@pytest.mark.parametrize("case", list(SETTLED_DUPLICATES))
def test_a_duplicate_settled_on_an_earlier_night_counts_once_when_read_back(tmp_path: Path, case: str) -> None:
    files = SETTLED_DUPLICATES[case]

    def nights(root: Path, groups: list[list[str]]) -> dict[str, pd.DataFrame]:
        src = root / "src"
        config = write_config(root, src / "song_data", src / "log_data")
        for names in groups:
            write_sources(src, [], {n: files[n] for n in names})
            run_here(config)
        return read_tables(root / "wh.duckdb")

    (tmp_path / "n").mkdir()
    (tmp_path / "f").mkdir()
    nightly = nights(tmp_path / "n", [[name] for name in files])
    assert_same_tables(nightly, nights(tmp_path / "f", [list(files)]))
