"""Every kind of bad input, on the real sample: what is kept, what is rejected with which reason, the exit code.

The threshold (``rejects.max_fraction``, default 1%) weighs what is lost in records (``pipeline/run/rejects.py``): a
few bad lines pass, and so does one record with a huge value; a day's file lost whole does not. Every run here
uses the default unless a test says otherwise.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support.helpers import (
    CAN_DROP_READS,
    assert_same_tables,
    cli,
    cli_bound_by_file_modes,
    log_days,
    read_tables,
    summary_of,
    write_config,
)
from tests.support.records import event


def _run(src: Path, tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    config = write_config(tmp, src / "song_data", src / "log_data")
    proc = cli("run", "--json", "-c", str(config), *args, env=env)
    return proc.returncode, summary_of(proc), proc.stderr


def _rejects(summary: dict[str, Any]) -> list[dict[str, Any]]:
    if not summary.get("rejects_file"):
        return []
    return [json.loads(x) for x in Path(summary["rejects_file"]).read_text().splitlines()]


def _append(path: Path, *lines: bytes) -> None:
    path.write_bytes(path.read_bytes() + b"".join(b"\n" + line for line in lines))


def test_crlf_line_endings_and_a_byte_order_mark_load_normally(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    day = log_days(sample_copy)[4]
    day.write_bytes(b"\xef\xbb\xbf" + day.read_bytes().replace(b"\n", b"\r\n"))
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 0, err
    assert summary["records_rejected"] == {"song_data": 0, "log_data": 0}
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_gzipped_log_files_are_read_transparently(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    for day in log_days(sample_copy)[:3]:
        day.with_name(day.name + ".gz").write_bytes(gzip.compress(day.read_bytes()))
        day.unlink()
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 0, err
    assert summary["files_read"]["log_data"] == 30 and summary["records_read"]["log_data"] == 8056
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_a_truncated_gzip_day_weighs_what_it_held_and_fails_the_run(sample_copy: Path, tmp_path: Path) -> None:
    # Compressed 10x, a lost day's 24 KB would be 0.3% of the bytes read and pass; it weighs 10x its size.
    day = log_days(sample_copy)[7]
    packed = gzip.compress(day.read_bytes())
    lost = day.with_name(day.name + ".gz")
    lost.write_bytes(packed[: len(packed) // 2])
    day.unlink()
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 4, err
    [r] = _rejects(summary)
    assert r["file"] == str(lost) and r["reason"].startswith("cannot decompress (gzip)")
    assert r["size"] == 10 * lost.stat().st_size


def test_a_zero_byte_file_is_rejected_whole_and_the_rest_loads(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    (sample_copy / "log_data" / "2018" / "11" / "2018-11-31-events.json").write_bytes(b"")
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 0, err
    [r] = _rejects(summary)
    assert (r["file"].endswith("2018-11-31-events.json"), r["line"], r["reason"]) == (True, None, "empty file")
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_a_day_without_a_single_line_break_is_a_day_lost_and_fails_the_run(sample_copy: Path, tmp_path: Path) -> None:
    # A truncated or binary upload: one "record" of 125 KB. Weighed by count it would be 1 in 8,000 and pass.
    day = log_days(sample_copy)[7]
    day.write_bytes(day.read_bytes().replace(b"\n", b" ")[:-20])
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 4, err
    assert "rejected records weigh" in err and "over rejects.max_fraction 1.00%" in err
    [r] = _rejects(summary)
    assert r["file"] == str(day) and r["line"] == 1 and r["size"] == day.stat().st_size
    assert not (tmp_path / "wh.duckdb").exists() or read_tables(tmp_path / "wh.duckdb")["songplays"].empty


def test_fields_of_the_wrong_type_are_rejected_naming_the_field(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    day = log_days(sample_copy)[2]
    _append(day, json.dumps(event(userId=12, sessionId=9999)).encode(), json.dumps(event(ts="soon")).encode())
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 0, err
    rejects = _rejects(summary)
    assert [r["line"] for r in rejects] == [len(day.read_bytes().split(b"\n")) - 1, len(day.read_bytes().split(b"\n"))]
    assert "userId" in rejects[0]["reason"] and "ts" in rejects[1]["reason"]
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_nan_and_infinity_literals_are_rejected(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    day = log_days(sample_copy)[2]
    base = json.dumps(event(sessionId=9998, length=1.5))
    _append(day, base.replace("1.5", "NaN").encode(), base.replace("1.5", "-Infinity").replace("9998", "9997").encode())
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 0, err
    assert [r["reason"] for r in _rejects(summary)] == ["'length' is not a finite number"] * 2
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


def test_a_nesting_bomb_neither_crashes_nor_loads_where_it_matters(sample_copy: Path, tmp_path: Path) -> None:
    depth = 5_000
    bomb = "[" * depth + "]" * depth
    day = log_days(sample_copy)[2]
    ignored = json.dumps(event(sessionId=9996))[:-1] + f', "extra": {bomb}}}'
    in_a_field = json.dumps(event(sessionId=9995))[:-1] + f', "artist": {bomb}}}'
    _append(day, ignored.encode(), in_a_field.encode())
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 0, err
    [r] = _rejects(summary)
    assert "artist" in r["reason"] and r["size"] == len(in_a_field)
    plays = read_tables(tmp_path / "wh.duckdb")["songplays"]
    assert "1:9996:0" in set(plays["songplay_id"]) and "1:9995:0" not in set(plays["songplay_id"])


def test_a_50_mb_field_is_a_rejected_record_on_every_target(sample_copy: Path, tmp_path: Path) -> None:
    day = log_days(sample_copy)[2]
    _append(day, json.dumps(event(sessionId=9994, artist="A" * (50 << 20))).encode())
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 0, "one record of 8,128, however long, is under 1%: " + err
    [r] = _rejects(summary)
    assert r["reason"] == "'artist' is 52,428,800 bytes, longer than the 1,024 its column holds"
    assert r["records"] == 1 and summary["rejected_ratio"] == pytest.approx(1 / (8057 + 71))
    assert "1:9994:0" not in set(read_tables(tmp_path / "wh.duckdb")["songplays"]["songplay_id"])


def test_a_directory_named_like_a_data_file_and_a_symlink_loop_are_skipped_with_a_warning(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    folder = sample_copy / "log_data" / "2018" / "11" / "2018-11-31-events.json"
    folder.mkdir()
    loop = sample_copy / "log_data" / "2018" / "loop.json"
    loop.symlink_to(loop)
    (sample_copy / "log_data" / "notes.txt").write_text("delivered late")
    code, _, err = _run(sample_copy, tmp_path)
    assert code == 0, err
    assert f"1 not read (cannot be examined: Too many levels of symbolic links): {loop}" in err
    assert f"(a folder named like a data file; what it holds is read as usual): {folder}" in err
    assert f"1 not read (not *.json (nor compressed *.json)): {sample_copy / 'log_data' / 'notes.txt'}" in err
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)


@pytest.mark.skipif(not CAN_DROP_READS, reason="needs setpriv to drop root's reads")
def test_an_unreadable_file_is_rejected_whole_and_read_by_the_next_run(
    sample_copy: Path, tmp_path: Path, clean: dict[str, pd.DataFrame]
) -> None:
    day = log_days(sample_copy)[0]
    lines = day.read_bytes().split(b"\n")
    late = day.with_name("2018-11-31-events.json")
    late.write_bytes(lines[0])  # one event: a small loss, under the threshold
    day.write_bytes(b"\n".join(lines[1:]))
    late.chmod(0o000)
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    proc = cli_bound_by_file_modes("run", "--json", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    [r] = _rejects(summary)
    assert r["file"] == str(late) and r["reason"] == "cannot read: PermissionError: Permission denied"
    assert summary["files_unread"] == [str(late)]
    # The permission is fixed: the file was never recorded as loaded, so the next run reads it.
    late.chmod(0o644)
    code, summary, err = _run(sample_copy, tmp_path)
    assert code == 0 and summary["files_read"]["log_data"] == 1, err
    assert_same_tables(read_tables(tmp_path / "wh.duckdb"), clean)
