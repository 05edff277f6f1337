"""Sources listed while the run starts: the same listing the run would make, and its errors left to the run."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.config import DEMO_ROOT, load_config
from pipeline.extract import ahead
from pipeline.extract.ahead import Listings, list_ahead
from pipeline.extract.discover import SourceError, discover
from tests.support.helpers import cli, write_config


def test_a_listing_made_ahead_is_the_listing_and_is_used_once(sample_dir: Path) -> None:
    url = str(sample_dir / "log_data")
    listings = Listings([url], {})
    assert listings.first_attempt(url, ".csv") is None, "listed as JSON files: a source of another format lists itself"
    listings = Listings([url], {})
    first = listings.first_attempt(url, ".json")
    assert first is not None
    _, files = first()
    assert files == discover(url)[1] and len(files) == 30
    assert listings.first_attempt(url, ".json") is None, "taken once: a retry lists again"
    assert listings.first_attempt(str(sample_dir / "song_data"), ".json") is None


@pytest.mark.parametrize("how", ["forked process", "thread"])
def test_both_listers_give_the_listing_and_the_error(how: str, sample_dir: Path, tmp_path: Path) -> None:
    good, missing = str(sample_dir / "song_data"), str(tmp_path / "missing")
    futures: dict[str, Future[Any]] = {good: Future(), missing: Future()}
    if how == "forked process":
        ahead._fork_lister(dict(futures))
    else:
        ahead._list(list(futures.items()), {})
    _, files = futures[good].result(timeout=60)
    assert files == discover(good)[1] and len(files) == 71
    with pytest.raises(SourceError, match="not found"):
        futures[missing].result(timeout=60)


def test_a_helper_that_dies_leaves_the_listing_to_the_run(sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.extract.discover

    monkeypatch.setattr(pipeline.extract.discover, "discover", lambda *a, **k: os._exit(3))  # the child dies listing
    future: Future[Any] = Future()
    assert ahead._fork_lister({str(sample_dir / "song_data"): future}) is not None
    assert future.result(timeout=60) is None, "no error of the helper's own: the run lists itself"


def test_a_run_takes_the_listings_made_ahead(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    proc = cli("run", "-v", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    for source in ("log_data", "song_data"):
        assert f"{source}: listed while the run started" in proc.stderr


def test_the_demo_folders_are_not_listed_before_the_demo_is_generated(tmp_path: Path, sample_dir: Path) -> None:
    demo = write_config(tmp_path, DEMO_ROOT / "song_data", DEMO_ROOT / "log_data", demo={"generate_if_empty": True})
    assert list_ahead(load_config(demo)) is None
    elsewhere = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    listings = list_ahead(load_config(elsewhere))
    assert listings is not None and listings.first_attempt(str(sample_dir / "song_data"), ".json") is not None


def _slow_discover(*args: Any, **kwargs: Any) -> Any:
    import time

    time.sleep(3)
    return discover(*args, **kwargs)


def test_the_helper_keeps_no_copy_of_the_run_lock(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import time

    import pipeline.extract.discover

    lock = os.open(tmp_path / "run.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    monkeypatch.setattr(pipeline.extract.discover, "discover", _slow_discover)  # the helper is still listing below
    future: Future[Any] = Future()
    helper = ahead._fork_lister({str(sample_dir / "song_data"): future})
    assert helper is not None
    time.sleep(0.5)
    os.close(lock)  # the run dies: the kernel must release its lock at once, not when the helper ends
    again = os.open(tmp_path / "run.lock", os.O_RDWR)
    try:
        fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(again)
    assert not future.done(), "the helper was still listing"
    helper.stop()
    assert future.result(timeout=60) is None, "stopped: the run lists itself"


def test_what_the_helper_does_not_read_is_said_by_the_run(
    sample_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "logs"
    shutil.copytree(sample_dir / "log_data", src)
    (src / "_SUCCESS").write_text("")
    future: Future[Any] = Future()
    with caplog.at_level("WARNING", logger="pipeline.extract.discover"):
        assert ahead._fork_lister({str(src): future}) is not None
        _, files = future.result(timeout=60)
    assert len(files) == 30
    # Said in this process (where the progress bar and the log handlers are), not by the helper.
    [said] = [r for r in caplog.records if "_SUCCESS" in r.getMessage()]
    assert said.name == "pipeline.extract.discover" and "a hidden or marker file" in said.getMessage()


def test_a_listing_that_cannot_start_leaves_the_listing_to_the_run(
    sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    # The receiving thread and the listing thread both fail at their first import: neither leaves the run waiting.
    monkeypatch.setitem(sys.modules, "fsspec.implementations.local", None)
    forked: Future[Any] = Future()
    assert ahead._fork_lister({str(sample_dir / "song_data"): forked}) is not None
    assert forked.result(timeout=60) is None
    monkeypatch.setitem(sys.modules, "pipeline.extract.discover", None)
    threaded: Future[Any] = Future()
    ahead._list([(str(sample_dir / "song_data"), threaded)], {})
    assert threaded.result(timeout=1) is None


def test_stopping_the_helper_does_not_wait_for_it_to_finish() -> None:
    import subprocess
    import threading
    import time

    child = subprocess.Popen(["sleep", "120"])  # a helper still listing a slow mount
    helper = ahead._Helper(child.pid)
    reaper = threading.Thread(target=helper.reap)  # as the receiving thread does when it gives up early
    reaper.start()
    time.sleep(0.3)
    stopper = threading.Thread(target=helper.stop)
    stopper.start()
    try:
        stopper.join(timeout=30)
        assert not stopper.is_alive(), "stop() waited for the helper to finish instead of stopping it"
        reaper.join(timeout=30)
        with pytest.raises(ChildProcessError):
            os.waitpid(child.pid, os.WNOHANG)  # collected: no zombie left
    finally:
        child.kill()
