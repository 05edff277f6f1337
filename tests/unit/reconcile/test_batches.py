"""Bounded batches: any batch size gives the same tables, and memory follows the batch, not the input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.extract.discover import SourceFile
from pipeline.extract.fetch import read_batches
from pipeline.extract.reader import extract_segments
from pipeline.extract.sources import LOG_SOURCE
from pipeline.reconcile.partials import RunPartials
from tests.support.helpers import read_tables, run_here, run_json, write_config
from tests.support.records import event


def test_small_batches_give_the_same_tables(sample_dir: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    many = tmp_path / "many"
    one.mkdir()
    many.mkdir()
    run_json(write_config(one, sample_dir / "song_data", sample_dir / "log_data"))
    # 1 MB batches: the sample's 30 log files (4 MB) arrive in several batches, a user spans batches.
    summary = run_json(write_config(many, sample_dir / "song_data", sample_dir / "log_data", source={"batch_mb": 1}))
    assert summary["rows_merged"]["songplays"] == 6820
    a, b = read_tables(one / "wh.duckdb"), read_tables(many / "wh.duckdb")
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


def test_batches_combined_one_by_one_in_groups_or_all_at_once_give_the_same_tables(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run sets the batches' partials aside and combines them when the load reads them, or in groups once they
    grow large: every grouping must give the tables one batch gives, also where the batches interleave in time
    and leave holes in the level histories that later combinations must keep."""
    # The sample's events in time order, dealt round-robin into three files: every batch spans the whole month.
    lines = sorted(
        (line for f in sorted((sample_dir / "log_data").rglob("*.json")) for line in f.read_text().splitlines()),
        key=lambda line: json.loads(line)["ts"] if line.strip() else 0,
    )
    logs = tmp_path / "log_data"
    logs.mkdir()
    for n in range(3):
        (logs / f"2018-11-0{n + 1}-events.json").write_text("\n".join(x for x in lines[n::3] if x.strip()) + "\n")

    sizes: list[int] = []  # rows each batch's partials hold
    folds: list[int] = []  # batches combined by each fold
    add, fold = RunPartials.add, RunPartials._fold

    def counting_add(self: RunPartials, users: pd.DataFrame, points: pd.DataFrame) -> None:
        sizes.append(len(users) + len(points))
        add(self, users, points)
        assert self._pending_rows <= self.FOLD_ROWS or not self._pending, "partials wait beyond FOLD_ROWS"

    def counting_fold(self: RunPartials) -> None:
        if self._pending:
            folds.append(len(self._pending))
        fold(self)

    monkeypatch.setattr(RunPartials, "add", counting_add)
    monkeypatch.setattr(RunPartials, "_fold", counting_fold)

    def run(name: str, fold_rows: int, batch_mb: int) -> dict[str, pd.DataFrame]:
        monkeypatch.setattr(RunPartials, "FOLD_ROWS", fold_rows)
        sizes.clear()
        folds.clear()
        (tmp_path / name).mkdir()
        summary = run_here(write_config(tmp_path / name, sample_dir / "song_data", logs, source={"batch_mb": batch_mb}))
        assert summary.rows_merged["songplays"] == 6820
        if batch_mb == 1:
            assert summary.reconciled["users_windows"] > 0  # the batches interleave: holes were filled
        return read_tables(tmp_path / name / "wh.duckdb")

    whole = run("one-batch", 10**9, 256)
    assert folds == [1]
    each = run("each", 0, 1)
    assert len(folds) == len(sizes) > 2 and set(folds) == {1}
    once = run("once", 10**9, 1)
    assert folds == [len(sizes)]
    groups = run("groups", sizes[0] + sizes[1], 1)
    assert len(folds) > 1 and max(folds) > 1
    assert len(whole["user_levels"]) > len(whole["users"])  # histories with several periods
    for name, tables in (("each", each), ("once", once), ("groups", groups)):
        for table in whole:
            pd.testing.assert_frame_equal(whole[table], tables[table], obj=f"{name}: {table}")


def test_the_same_event_in_files_of_different_batches_is_loaded_once(sample_copy: Path, tmp_path: Path) -> None:
    days = sorted((sample_copy / "log_data").rglob("*.json"))
    shutil.copy(days[0], days[-1].parent / "2018-11-30-copy-of-first-day-events.json")
    summary = run_json(
        write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data", source={"batch_mb": 1})
    )
    assert summary["rows_total"]["songplays"] == 6820
    assert summary["rows_total"]["users"] == 97


def test_a_file_larger_than_a_batch_is_streamed_with_true_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "2018-11-01-events.json"
    lines = [json.dumps(event(itemInSession=i, song="x" * 300)) for i in range(12_000)]
    lines[9_000] = '{"broken": '
    path.write_text("\n".join(lines))
    size = path.stat().st_size
    files = [SourceFile(path=str(path), url=str(path), size=size, version="1")]
    from fsspec.implementations.local import LocalFileSystem

    batches = list(read_batches(LocalFileSystem(), files, batch_bytes=1 << 20))
    assert len(batches) >= 4 and all(len(b[0].data) < (2 << 20) for b in batches)  # a block plus a partial line
    frames, rejects = [], []
    for segments in batches:
        x = extract_segments(LOG_SOURCE, files, segments)
        frames.append(x.frame)
        rejects += x.rejects
    frame = pd.concat(frames)
    assert len(frame) == 11_999
    assert (frame["_line"] == frame["itemInSession"] + 1).all(), "line numbers survive the chunking"
    assert [(r.line, r.raw) for r in rejects] == [(9_001, '{"broken": ')]


def test_a_200_mb_log_file_is_loaded_in_bounded_memory(sample_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "log_data" / "2018" / "11"
    logs.mkdir(parents=True)
    base = [
        json.loads(x) for p in sorted((sample_dir / "log_data").rglob("*.json")) for x in p.read_text().splitlines()
    ]
    plays = sum(1 for e in base if e["page"] == "NextSong" and e["userId"])
    copies = 0
    with open(logs / "2018-11-30-events.json", "w") as out:
        while out.tell() < 200_000_000:
            for e in base:
                out.write(json.dumps({**e, "sessionId": e["sessionId"] + 100_000 * copies}) + "\n")
            copies += 1
    summary = run_json(write_config(tmp_path, sample_dir / "song_data", tmp_path / "log_data", source={"batch_mb": 32}))
    assert summary["rows_total"]["songplays"] == plays * copies
    peak = max(summary["peak_memory_mb"].values())
    # One batch in memory (plus the interpreter, pandas and DuckDB): not the 200 MB file several times over.
    assert peak < 700, f"peak memory {peak:.0f} MB for a 200 MB file in 32 MB batches"
