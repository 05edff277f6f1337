from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.extract.discover import SourceError, SourceFile, discover, is_data_file, spread


def test_only_json_outside_hidden_folders(tmp_path: Path) -> None:
    for rel in (
        "2018/11/a.json",
        "2018/11/b.json",
        ".ipynb_checkpoints/a-checkpoint.json",
        "2018/_temporary/c.json",
        "_SUCCESS",
        "2018/11/notes.txt",
        "2018/11/a.json.tmp",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    _, files = discover(str(tmp_path))
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in files] == [
        "2018/11/a.json",
        "2018/11/b.json",
    ]
    assert all(f.size == 2 for f in files)
    # The version is what the ledger holds from every earlier run: a changed format would reload every file once.
    assert [f.version for f in files] == [str(os.stat(f.path).st_mtime_ns) for f in files]
    os.utime(files[0].path, ns=(0, 0))
    assert discover(str(tmp_path))[1][0].version == ""  # as fsspec's listing said it: a time of 0 is no time


@pytest.mark.parametrize(
    ("relative", "ok"),
    [
        ("A/B/C/TR1.json", True),
        ("A/.ipynb_checkpoints/x.json", False),
        ("_SUCCESS", False),
        ("a.jsonl", False),
    ],
)
def test_is_data_file(relative: str, ok: bool) -> None:
    assert is_data_file(relative) is ok


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        discover(str(tmp_path / "nope"))


def test_a_notebooks_sample_of_files_is_capped_and_spread_over_the_listing() -> None:
    files = [SourceFile(f"/d/{i:03}.json", f"/d/{i:03}.json", 1, "") for i in range(100)]
    picked = spread(files, 10)
    assert [f.path for f in picked] == [f"/d/{i:03}.json" for i in range(0, 100, 10)]
    assert spread(files, 500) == files, "under the cap, every file"
    assert len(spread(files, 500, max_bytes=7)) == 7 and len(spread(files, 500, max_bytes=0)) == 1
