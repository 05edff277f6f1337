"""The source-format seam: a format is one object registered by name; listing and parsing go through it."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from pipeline.extract import formats
from pipeline.extract.discover import discover
from pipeline.extract.fetch import Segment
from pipeline.extract.formats import Registered
from pipeline.extract.reader import extract, format_named
from pipeline.extract.records import Parsed
from pipeline.extract.sources import SONG_SOURCE, SourceSpec


class TinyCsv:
    """A toy CSV format with a header line: enough to show what a new format has to provide."""

    def parse(
        self, spec: SourceSpec, names: Sequence[str], segments: Sequence[Segment], sizes: Sequence[int]
    ) -> Parsed:
        tables, files, lines = [], [], []
        for seg in segments:
            table = pcsv.read_csv(
                pa.py_buffer(seg.data),
                convert_options=pcsv.ConvertOptions(column_types=spec.schema, strings_can_be_null=True),
            )
            tables.append(table.select(spec.schema.names).cast(spec.schema))
            files.append(np.full(table.num_rows, seg.file, np.int32))
            lines.append(np.arange(2, table.num_rows + 2, dtype=np.int32))  # line 1 is the header
        data = {(seg.file, n + 1): line for seg in segments for n, line in enumerate(seg.data.split(b"\n"))}
        return Parsed(
            table=pa.concat_tables(tables),
            file_ids=np.concatenate(files),
            line_nos=np.concatenate(lines),
            rejects=[],
            bytes_read=sum(len(seg.data) for seg in segments),
            raw_line=lambda f, n: data[(f, n)],
            whole={seg.file for seg in segments},
        )


@pytest.fixture
def csv_format(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("tiny_csv")
    module.FORMAT = TinyCsv()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiny_csv", module)
    monkeypatch.setitem(formats.FORMATS, "csv", Registered(".csv", "tiny_csv"))


def test_a_registered_format_lists_and_parses_its_files_and_the_checks_around_it_still_apply(
    csv_format: None, tmp_path: Path
) -> None:
    header = ",".join(SONG_SOURCE.schema.names)
    good = "1,AR1,,,Town,An Artist,SO1,A Song,200.5,2001"
    no_id = "1,AR2,,,Town,Another,,Nameless,100.0,2002"  # song_id is required
    (tmp_path / "a.csv").write_text(f"{header}\n{good}\n{no_id}\n")
    (tmp_path / "b.json").write_text("{}\n")
    fs, files = discover(str(tmp_path), suffix=formats.suffix_of("csv"))
    assert [Path(f.path).name for f in files] == ["a.csv"], "the format's files, not the JSON beside them"
    got = extract(replace(SONG_SOURCE, format="csv"), fs, files)
    assert got.frame["song_id"].tolist() == ["SO1"]
    assert got.frame["duration"].tolist() == [200.5]
    assert [(r.line, r.reason, r.raw) for r in got.rejects] == [(3, "missing required field 'song_id'", no_id)]


def test_json_is_the_default_format() -> None:
    assert SONG_SOURCE.format == formats.DEFAULT_FORMAT == "json"
    assert formats.suffix_of("json") == ".json"
    assert type(format_named("json")).__name__ == "JsonLines"
