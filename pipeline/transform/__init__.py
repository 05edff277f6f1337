"""Source records to star rows: pure functions, no I/O, so notebooks and tests can call each one.

The rules are SPEC.md's, and every choice it leaves open is made **by the data, never by arrival**: when two
records compete for one row (the same event in two files, one song in two song files, a user's two events in
the same millisecond), a total order on their values decides. That is what makes the warehouse after any
sequence of nightly runs, in any batch size, equal to one run over every file: each row is a function of the
set of records that carry its key, not of the order they were read in.

Three kinds of function live in this package:

- per table (``songs``, ``artists``, ``users``, ``songplays``, ``time``, ``user_levels``): the rule itself;
- ``catalogue`` and ``log_batch``: the only path from a batch of source records to star rows, used by the
  local engine, the Ray tasks, the notebooks and the tests (reconciliation, which derives rows again from
  records read back, calls the same per-table functions ``log_batch`` is made of);
- ``combine_users`` and ``combine_level_points``: merge two partial results (two batches, or a run and what
  the warehouse holds). They are exact whenever the parts do not interleave in time, and otherwise name the
  users whose rows must be derived again from all their records.

Frames use the source field names (plus ``_file``/``_line`` provenance) on the way in and return exactly the
columns ``core/schema.py`` defines for each table.

Modules: ``frames`` (shared helpers), ``catalogue`` (songs, artists, the lookup), ``user_rows``, ``levels``,
``play_rows`` (songplays, time), ``batch`` (a batch's records to all of the above).
"""
