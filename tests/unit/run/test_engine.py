"""The local engine's background prefetch: order kept, errors raised in the caller, no thread left behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.ops.faults import InjectedFault
from pipeline.run.engine import prefetch
from tests.support.helpers import no_thread_left, run_here, write_config


def test_items_arrive_in_order_while_the_next_is_produced_in_the_background() -> None:
    produced_by: list[str] = []

    def items() -> Iterator[int]:
        for i in range(5):
            produced_by.append(threading.current_thread().name)
            yield i

    assert list(prefetch(items())) == [0, 1, 2, 3, 4]
    assert set(produced_by) == {"prefetch"}


def test_an_error_in_the_producer_is_raised_in_the_caller_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("bad batch in log_data/2018-11-03-events.json")

    got = []
    with pytest.raises(ValueError, match="2018-11-03"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1]


def test_a_caller_that_stops_early_stops_the_producer() -> None:
    produced = 0

    def items() -> Iterator[int]:
        nonlocal produced
        for i in range(1_000):
            produced += 1
            yield i

    with closing(prefetch(items())) as it:
        assert next(it) == 0
    no_thread_left("prefetch")
    assert produced < 10  # it stopped after the queue filled, not after producing everything


def test_a_caller_that_drops_the_iterator_stops_the_producer() -> None:
    it = prefetch(iter(range(1_000)))
    assert next(it) == 0
    del it
    no_thread_left("prefetch")


def test_production_starts_at_once_and_a_close_before_the_first_item_stops_it() -> None:
    produced = threading.Event()

    def items() -> Iterator[int]:
        produced.set()
        yield from range(1_000)

    it = prefetch(items())
    assert produced.wait(5), "the first item is produced before anyone asks for it"
    it.close()
    no_thread_left("prefetch")
    assert list(it) == []


def test_a_run_that_fails_on_the_song_side_leaves_no_log_parsing_behind(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local engine starts parsing the logs before the songs are read; a failure there must stop it.
    monkeypatch.setenv("SPARKIFY_FAULT_FAIL_AT", "songs-read")
    with pytest.raises(InjectedFault):
        run_here(write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data"))
    no_thread_left("prefetch")
