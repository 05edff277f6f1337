"""The parser keeps every good record, sets each bad one aside with file, line and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.extract.sources import LOG_SOURCE, SONG_SOURCE
from tests.support.records import event, jsonl, parse_lines, song

A, B = "log_data/a.json", "log_data/b.json"


def lines(*records: object) -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else json.dumps(r).encode() for r in records)


def test_good_files_parse_with_file_and_line() -> None:
    x = parse_lines(LOG_SOURCE, {A: jsonl([event(itemInSession=i) for i in range(3)]), B: jsonl([event()])})
    assert x.rejects == []
    assert list(zip(x.frame["_file"], x.frame["_line"], strict=True)) == [(0, 1), (0, 2), (0, 3), (1, 1)]


def test_malformed_line_is_rejected_and_the_rest_kept() -> None:
    bad = b'{"ts": 1541105830796, "userId": "1",'
    x = parse_lines(
        LOG_SOURCE,
        {A: lines(event(itemInSession=0), bad, event(itemInSession=2)), B: jsonl([event(itemInSession=9)])},
    )
    assert sorted(x.frame["itemInSession"].tolist()) == [0, 2, 9]
    # Rows after the bad line keep their true line numbers.
    assert x.frame.loc[x.frame["itemInSession"] == 2, "_line"].item() == 3
    [r] = x.rejects
    assert (r.file, r.line, r.raw) == (A, 2, bad.decode())
    assert "JSON parse error" in r.reason
    assert x.records == 4


def test_truncated_last_line() -> None:
    x = parse_lines(LOG_SOURCE, {A: lines(event(), b'{"artist": "Fo')})
    assert len(x.frame) == 1
    assert [(r.line, r.raw) for r in x.rejects] == [(2, '{"artist": "Fo')]


def test_wrong_types_are_rejected_with_the_field() -> None:
    x = parse_lines(LOG_SOURCE, {A: lines(event(ts="yesterday"), event(userId=12), event(itemInSession=5))})
    assert x.frame["itemInSession"].tolist() == [5]
    assert [r.line for r in x.rejects] == [1, 2]
    assert "ts" in x.rejects[0].reason and "userId" in x.rejects[1].reason


def test_missing_required_field_and_out_of_range_ts() -> None:
    no_ts = event()
    del no_ts["ts"]
    x = parse_lines(LOG_SOURCE, {A: lines(no_ts, event(ts=1541105830), event(itemInSession=7))})
    assert x.frame["itemInSession"].tolist() == [7]
    assert [(r.line, r.reason) for r in x.rejects] == [
        (1, "missing required field 'ts'"),
        (2, "ts out of range (epoch ms outside 2000-2100)"),
    ]
    assert json.loads(x.rejects[1].raw)["ts"] == 1541105830


def test_invalid_utf8_is_rejected_and_kept_visible() -> None:
    bad = b'{"ts": 1541105830796, "song": "\xff\xfe", "userId": "1", "sessionId": 1, "itemInSession": 1, "page": "x"}'
    x = parse_lines(LOG_SOURCE, {A: lines(event(), bad)})
    assert len(x.frame) == 1
    [r] = x.rejects
    assert r.line == 2 and "UTF-8" in r.reason and "\\xff\\xfe" in r.raw


def test_blank_lines_and_crlf_are_not_records() -> None:
    body = lines(event(itemInSession=0), b"", event(itemInSession=2)).replace(b"\n", b"\r\n") + b"\r\n"
    x = parse_lines(LOG_SOURCE, {A: body})
    assert x.rejects == []
    assert x.frame[["itemInSession", "_line"]].values.tolist() == [[0, 1], [2, 3]]


def test_empty_and_non_json_files() -> None:
    x = parse_lines(LOG_SOURCE, {A: b"", B: b"userId,ts\n1,2\n3,4", "log_data/c.json": jsonl([event()])})
    assert len(x.frame) == 1
    assert sorted((r.file, r.line, r.reason.split(":")[0]) for r in x.rejects) == [
        (A, None, "empty file"),
        (B, None, "not JSON"),
    ]


def test_song_file_holding_a_list_of_objects_is_read() -> None:
    body = json.dumps([song(song_id="SO1"), song(song_id="SO2")]).encode()
    x = parse_lines(SONG_SOURCE, {"song_data/A/A/A/TRX.json": body})
    assert x.rejects == []
    assert x.frame["song_id"].tolist() == ["SO1", "SO2"]


def test_files_without_final_newline_are_not_glued_together() -> None:
    x = parse_lines(SONG_SOURCE, {f"s{i}.json": json.dumps(song(song_id=f"SO{i}")).encode() for i in range(3)})
    assert x.frame["song_id"].tolist() == ["SO0", "SO1", "SO2"]


def test_mojibake_is_kept_byte_for_byte() -> None:
    x = parse_lines(LOG_SOURCE, {A: jsonl([event(artist="BjÃ\u0083Â¶rk")])})
    assert x.frame["artist"].item() == "BjÃ\u0083Â¶rk"


def test_a_record_longer_than_a_parse_block_is_kept() -> None:
    # Big files are parsed in 16 MB blocks; a 40 MB record straddles two block boundaries, which pyarrow
    # refuses at that block size. It must be kept whole, not lost or split. (Its bulk is a field the pipeline
    # does not read: a 40 MB value of a field it does read is rejected as longer than its column.)
    x = parse_lines(
        LOG_SOURCE, {A: lines(event(itemInSession=0), event(itemInSession=1, song="Tail", extra="M" * (40 << 20)))}
    )
    assert x.rejects == []
    assert x.frame["song"].tolist() == ["Some Song", "Tail"]
    assert x.frame["_line"].tolist() == [1, 2]


def test_many_small_files_and_big_ones_keep_their_lines_across_parse_groups() -> None:
    # Small files are parsed together in groups, big ones alone; provenance must survive both.
    files = {f"log_data/small-{i}.json": jsonl([event(itemInSession=k) for k in range(3)]) for i in range(50)}
    files["log_data/big.json"] = jsonl([event(itemInSession=k, song="s" * 400) for k in range(45_000)])
    x = parse_lines(LOG_SOURCE, files)
    assert x.rejects == [] and len(x.frame) == 50 * 3 + 45_000
    assert (x.frame["_line"] == x.frame["itemInSession"] + 1).all()
    assert x.frame.groupby("_file").size().tolist() == [45_000] + [3] * 50  # big.json sorts first


@pytest.mark.parametrize(
    "bad",
    [b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82"],
    ids=["invalid byte", "surrogate", "overlong", "truncated sequence"],
)
def test_invalid_utf8_in_a_large_file_is_found_like_in_a_small_one(bad: bytes) -> None:
    # Above 64 KiB a file's UTF-8 is checked by Arrow, without the interpreter; below, by Python's decoder.
    def utf8(record: dict[str, object]) -> bytes:
        return json.dumps(record, ensure_ascii=False).encode()

    good = [utf8(event(itemInSession=i, song="Björk ✓")) for i in range(400)]
    damaged = utf8(event(itemInSession=999, song="x")).replace(b'"x"', b'"' + bad + b'"')
    body = b"\n".join([*good[:200], damaged, *good[200:]])
    assert len(body) > 1 << 16
    x = parse_lines(LOG_SOURCE, {A: body})
    assert len(x.frame) == 400 and sorted(x.frame["itemInSession"]) == list(range(400))
    assert set(x.frame["song"]) == {"Björk ✓"}
    [r] = x.rejects
    assert r.line == 201 and "UTF-8" in r.reason


def test_a_local_file_is_read_whole_whatever_size_the_listing_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from pipeline.extract import fetch

    body = b"".join(b'{"n": %d}\n' % i for i in range(100_000))
    path = tmp_path / "day.json"
    path.write_bytes(body)
    for listed in (len(body), 10, len(body) + 5_000, 0):  # as listed, grown since, shrunk since, empty then
        assert fetch._read_local(str(path), listed) == body
    # Reads that return less than asked (a network file system; above 2 GiB, Linux) still read it all.
    real = os.read
    monkeypatch.setattr(fetch.os, "read", lambda fd, n: real(fd, min(n, 4096)))
    for listed in (len(body), 10, len(body) + 5_000):
        assert fetch._read_local(str(path), listed) == body


@pytest.mark.parametrize("at", [(8 << 20) - 1, 8 << 20, (8 << 20) + 1])
def test_lines_are_counted_across_the_slices_of_a_large_batch(at: int) -> None:
    from pipeline.extract.json_lines import _count_lines

    data = bytearray(b"x" * ((16 << 20) + 3))
    for i in (0, at, len(data) - 2):
        data[i] = 0x0A
    assert _count_lines(bytes(data)) == 4 == bytes(data).count(b"\n") + 1
