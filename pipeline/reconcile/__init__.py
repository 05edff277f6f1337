"""Inside the load: the final rows of every user and play a run touches.

Modules: ``partials`` (what the run's batches add up to), ``plan`` (pure functions: what to read again and
the rows it gives), ``queries`` (the SQL that reads it), ``reconciler`` (the load's callback that runs them).

A run's batches give partial results: each user's latest event and level-history points, and the plays of the
events it read. Most of the time they combine with what the warehouse holds by simple rules (a later event
wins; a night's history extends the stored one), and that costs reading back the stored rows of the users the
run touched, not their history. Where the simple rules cannot decide, rows are derived again, by the same
functions, from the kept records behind them (``_sparkify_event_records``):

- an event whose records change (its file is reloaded), meet a stored record from another file, or appear
  more than once in the run is *contested*: its play and its user are derived again from all their records;
- where a user's events of this run interleave in time with stored ones or with each other (a session that
  runs past midnight into the next day's file, a back-filled day overlapping loaded ones), level-history
  points cannot say how the levels alternate: that stretch of time is a *hole*, and only the records in it
  (and the first millisecond after it) are read, to fill it. Outside holes the points stay exact.

So whatever order files arrive in, and in whatever batches, every row ends as one run over every file would
make it.
"""
