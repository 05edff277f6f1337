"""Staging: a frame is checked where it is written, its file written behind the caller, and nothing is loaded
from a part that was not written."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.core.schema import RUN_FILES, SONGPLAYS
from pipeline.extract.discover import discover
from pipeline.extract.reader import extract
from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from pipeline.load.stage import Stager
from pipeline.run.engine import process_batch
from pipeline.transform import batch, catalogue
from tests.support.helpers import no_thread_left, run_here, write_config


def _files(*names: str) -> pd.DataFrame:
    return pd.DataFrame({"file": pd.array(list(names), dtype="string[pyarrow]")})


def test_a_part_is_written_behind_the_caller_and_finish_waits_for_it(tmp_path: Path) -> None:
    gate = threading.Event()

    def held(step: str, fn: Callable[[], None]) -> None:  # the write waits here until the test lets it go
        assert gate.wait(10), "the caller never went on while its part was being written"
        fn()

    stager = Stager(str(tmp_path / "staging"), "run-1", retry=held)
    frame = _files("a.json", "b.json")
    path = stager.write(RUN_FILES.name, frame, "00000")
    assert not Path(path).exists(), "write returned only once the file was written"
    gate.set()
    stager.record(RUN_FILES.name, path, len(frame))
    staged = stager.finish()
    assert staged.tables[RUN_FILES.name].files == [path]
    assert pq.read_table(path).column("file").to_pylist() == ["a.json", "b.json"]
    no_thread_left("stage")


def test_a_frame_whose_types_drifted_fails_where_it_is_written_and_nothing_is_written(tmp_path: Path) -> None:
    stager = Stager(str(tmp_path / "staging"), "run-1")
    with pytest.raises(TypeError, match="run_files: frame does not match the schema"):
        stager.write(RUN_FILES.name, pd.DataFrame({"file": [1, 2]}), "00000")
    stager.finish()
    assert not (tmp_path / "staging").exists()


def test_a_part_that_cannot_be_written_fails_the_next_flush_with_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    root.write_text("a file where the staging folder should be")
    stager = Stager(str(root), "run-1")
    stager.write(RUN_FILES.name, _files("a.json"), "00000")
    with pytest.raises(OSError, match="Not a directory") as failed:
        stager.flush()
    assert str(root) in str(failed.value)
    stager.close()
    no_thread_left("stage")


def test_finish_raises_a_write_that_failed_and_names_its_part(tmp_path: Path) -> None:
    def refused(step: str, fn: Callable[[], None]) -> None:
        raise OSError("disk full")

    stager = Stager(str(tmp_path / "staging"), "run-1", retry=refused)
    path = stager.write(RUN_FILES.name, _files("a.json"), "00000")
    with pytest.raises(OSError, match="disk full") as failed:
        stager.finish()
    assert f"while staging {path}" in failed.value.__notes__
    with pytest.raises(RuntimeError, match="after it was finished"):
        stager.write(RUN_FILES.name, _files("b.json"), "00001")
    no_thread_left("stage")


def test_a_batch_hands_over_its_parts_only_once_the_previous_batchs_are_written(
    sample_dir: Path, tmp_path: Path
) -> None:
    # At most one batch's tables wait to be written: the second batch raises the first one's failed write
    # before it stages anything of its own.
    songs = extract(SONG_SOURCE, *discover(str(sample_dir / "song_data")))
    lookup = catalogue.song_lookup(batch.song_records(songs.frame, [f.url for f in songs.files]))
    fs, files = discover(str(sample_dir / "log_data"))
    first, second = (extract(LOG_SOURCE, fs, files[:1]), extract(LOG_SOURCE, fs, files[1:2]))
    begun: list[str] = []

    def first_batch_fails(step: str, fn: Callable[[], None]) -> None:
        begun.append(step)
        if "part-00000" in step:
            raise OSError("disk full")
        fn()

    stager = Stager(str(tmp_path / "staging"), "run-1", retry=first_batch_fails)
    process_batch(first, lookup, stager, "00000")
    with pytest.raises(OSError, match="disk full"):
        process_batch(second, lookup, stager, "00001")
    assert begun and not any("part-00001" in step for step in begun)
    assert not (tmp_path / "staging" / "run-1" / SONGPLAYS.name / "part-00001.parquet").exists()
    stager.close()
    no_thread_left("stage")


def test_a_run_whose_staging_cannot_be_written_fails_loads_nothing_and_leaves_no_writer(
    sample_dir: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    (tmp_path / "staging").write_text("a file where the staging folder should be")
    with pytest.raises(OSError, match="Not a directory"):
        run_here(config)
    no_thread_left("stage")
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT COUNT(*) FROM songplays").fetchone() == (0,)
        assert con.execute("SELECT status FROM _sparkify_runs").fetchall() == [("failed",)]
