"""Repairing the logs' double-encoded text: everything damaged is restored, nothing correct is touched."""

from __future__ import annotations

import json
from pathlib import Path

import ftfy
import pandas as pd
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from pipeline.demo.generate import as_the_logs_carry
from pipeline.extract.repair import TEXT_FIELDS, exact_inverse, repair_column, repair_events, repair_text

# Correct text in many scripts, and correct text that merely looks like mojibake (capital Ã and Â in real
# words, curly quotes, full-width letters, ligatures: ftfy.fix_text would change the last three).
CORRECT = [
    "Björk",
    "Beyoncé",
    "Sigur Rós",
    "Mötley Crüe",
    "Zoë Keating",
    "Łódź",
    "Dvořák",
    "Пётр Ильич Чайковский",
    "Μίκης Θεοδωράκης",
    "坂本龍一",
    "宇多田ヒカル",
    "방탄소년단",
    "עומר אדם",
    "محمد عبده",
    "Ludovico Einaudi – Nuvole Bianche",
    "Don’t Stop Me Now",
    "“Heroes”",
    "ＡＢＣ",
    "ﬁnale",
    "SÃO PAULO",
    "MÃE",
    "Ã",
    "Straße",
    "¿Dónde va Chichi?",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36",
]


def _sample_text(sample_dir: Path) -> list[str]:
    values = []
    for path in sorted((sample_dir / "log_data").rglob("*.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            values += [record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str) and not record[f].isascii()]
    return values


def test_every_damaged_field_of_the_real_sample_is_restored_exactly(sample_dir: Path) -> None:
    damaged = _sample_text(sample_dir)
    assert len(damaged) == 346
    repaired = [repair_text(v) for v in damaged]
    # Restored means: the source's double encoding of the repaired text gives back exactly what arrived.
    assert all(as_the_logs_carry(r) == v for r, v in zip(repaired, damaged, strict=True))
    assert not any("Ã" in r or "Â" in r for r in repaired)


def test_the_exact_inverse_restores_what_ftfy_leaves_half_repaired() -> None:
    damaged = "En Glad Calypso Om V\u00c3\u0083\u00c2\u00a5ren (Live '62)"
    assert ftfy.fix_encoding(damaged) == "En Glad Calypso Om VÃ¥ren (Live '62)"  # one layer only
    assert repair_text(damaged) == "En Glad Calypso Om Våren (Live '62)"


def test_correct_text_in_any_script_is_left_unchanged() -> None:
    assert [repair_text(v) for v in CORRECT] == CORRECT
    assert all(exact_inverse(v) is None for v in CORRECT)


def test_damage_of_another_kind_falls_back_to_ftfy() -> None:
    assert repair_text("CafÃ©") == "Café"  # one layer of UTF-8 read as Latin-1, not the logs' two


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_repair_inverts_the_sources_double_encoding_for_any_text(text: str) -> None:
    assert repair_text(as_the_logs_carry(text) or "") == text


def test_a_frame_is_repaired_column_by_column_with_a_count() -> None:
    damaged = as_the_logs_carry("Beyoncé")
    frame = pd.DataFrame(
        {
            "artist": pd.array([damaged, "Coldplay", None, damaged], dtype="string[pyarrow]"),
            "firstName": pd.array(["Zoë", as_the_logs_carry("Zoë"), None, "Ann"], dtype="string[pyarrow]"),
            "page": pd.array(["NextSong"] * 4, dtype="string[pyarrow]"),
        }
    )
    out, n = repair_events(frame)
    assert n == 3
    assert out["artist"].tolist() == ["Beyoncé", "Coldplay", pd.NA, "Beyoncé"]
    assert out["firstName"].tolist() == ["Zoë", "Zoë", pd.NA, "Ann"]
    assert out["artist"].dtype == frame["artist"].dtype
    plain, none = repair_column(frame["page"])
    assert none == 0 and plain is frame["page"]


def test_a_column_of_several_chunks_and_a_slice_are_repaired_like_one() -> None:
    damaged = as_the_logs_carry("Sigur Rós") or ""
    chunked = pd.Series(
        pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(["a", damaged, None]), pa.array([damaged, "b"])]))
    )
    out, n = repair_column(chunked)
    assert n == 2 and out.tolist() == ["a", "Sigur Rós", pd.NA, "Sigur Rós", "b"]
    # A slice whose own values are ASCII, over a buffer that also holds the damaged ones, is left as it is;
    # a slice that starts past ASCII values and holds a damaged one is repaired.
    sliced = pd.Series(pd.arrays.ArrowStringArray(pa.array([damaged, "x", "y"]).slice(1)))
    same, none = repair_column(sliced)
    assert none == 0 and same.tolist() == ["x", "y"]
    tail = pd.Series(pd.arrays.ArrowStringArray(pa.array(["x", "y", damaged]).slice(2)))
    fixed, one = repair_column(tail)
    assert one == 1 and fixed.tolist() == ["Sigur Rós"]
