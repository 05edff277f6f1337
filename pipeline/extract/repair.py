"""Repair the event logs' double-encoded text, so plays can match the song files and names read right.

The event simulator's non-ASCII text went through "encode UTF-8, decode Latin-1" twice: ``é`` (bytes
``C3 A9``) became ``Ã©``, then ``Ã\\x83Â©``. The song files carry correct text, so no exact match can join
such a play to its song until the event's text is restored.

Two repairs, in this order, measured on the real sample (346 damaged fields in 326 of 8,056 lines) and on
correct names in a dozen scripts (``tests/unit/extract/test_repair.py``):

1. The exact inverse of that damage: encode Latin-1, decode UTF-8, twice. It applies only when both steps
   succeed, which correct text practically never allows (it would need each non-ASCII letter to be followed by
   C1 control characters). It restores all 346 fields, including the two where ftfy stops after one layer
   (``VÃ\\x83Â¥ren`` comes out of ftfy as ``VÃ¥ren``; the inverse gives ``Våren``).
2. Otherwise ``ftfy.fix_encoding``, for damage that is not the source's usual kind (one layer, Windows-1252).
   Only its encoding fixes: ``ftfy.fix_text``'s other fixes change correct text (curly quotes become straight,
   full-width letters and ligatures are folded), which would break exact matching against the song files.

Most values are plain ASCII and need no look at all: a vectorised Arrow check selects the few that do, and each
distinct value is repaired once.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Every free-text field of an event: the ones matching uses and the ones loaded into users and songplays.
TEXT_FIELDS = ("artist", "song", "firstName", "lastName", "location", "userAgent")


def _undo_one_layer(text: str) -> str | None:
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def exact_inverse(text: str) -> str | None:
    """The text before the source's double encoding, or None when ``text`` is not double-encoded."""
    once = _undo_one_layer(text)
    if once is None or once == text:
        return None
    twice = _undo_one_layer(once)
    return twice if twice is not None and twice != once else None


@lru_cache(maxsize=65536)
def repair_text(text: str) -> str:
    """The text the source meant; correct text comes back unchanged."""
    fixed = exact_inverse(text)
    if fixed is not None:
        return fixed
    import ftfy  # imported on the first non-ASCII value: most runs of ASCII-only data never need it

    return str(ftfy.fix_encoding(text))


def _all_ascii(arr: pa.Array) -> bool:
    """Whether every value is ASCII, from the column's buffer of characters, read in place (a tenth of a
    per-value check; the buffer may hold more than the array's values, which can only make this say no)."""
    data = arr.buffers()[2]
    return data is None or data.size == 0 or int(np.frombuffer(data, np.uint8).max()) < 0x80


def repair_column(values: pd.Series) -> tuple[pd.Series, int]:
    """``values`` with every non-ASCII value repaired, and how many values changed.

    Only the non-ASCII rows are looked up and replaced (a fifth of the rows of the most damaged column): the
    lookup and the replacement over every row made this 2x slower."""
    arr = pa.array(values, pa.string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):  # a frame put together from others; one chunk is not copied
        arr = arr.combine_chunks()
    if _all_ascii(arr):
        return values, 0
    needs = pc.fill_null(pc.invert(pc.string_is_ascii(arr)), False)
    damaged = arr.filter(needs)
    distinct = pc.unique(damaged)
    before = distinct.to_pylist()
    after = [repair_text(v) for v in before]
    if after == before:
        return values, 0
    fixed = pa.array(after, pa.string()).take(pc.index_in(damaged, value_set=distinct))
    changed = int(pc.sum(pc.not_equal(fixed, damaged)).as_py() or 0)
    out = pc.replace_with_mask(arr, needs, fixed)
    repaired = pd.Series(pd.arrays.ArrowStringArray(out), index=values.index, name=values.name)
    return repaired, changed


def repair_events(events: pd.DataFrame, fields: Iterable[str] = TEXT_FIELDS) -> tuple[pd.DataFrame, int]:
    """``events`` with every text field repaired (a new frame when anything changed), and the fields repaired."""
    total = 0
    columns: dict[str, pd.Series] = {}
    for name in fields:
        if name not in events:
            continue
        fixed, n = repair_column(events[name])
        if n:
            columns[name] = fixed
            total += n
    if not columns:
        return events, 0
    return events.assign(**columns), total
