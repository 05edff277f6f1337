"""What a run's log batches add up to before they meet the warehouse: each user's latest event, the level
history's points, and the holes where batches interleave."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from pipeline.transform import levels, user_rows


@dataclass
class RunPartials:
    """What a run's log batches add up to, before it meets the warehouse.

    Batches are set aside as they come and combined in one go when the result is read, or sooner once they hold
    ``FOLD_ROWS`` rows, so memory stays bounded. Combining each batch into the running total as it came reworked
    everything before it each time, on the thread the transforms need; in one go it is done once. What the
    combination leaves depends on the order and the grouping of the batches (which stretches become holes, which
    redundant points stay), but not the rows the load writes once the holes are filled from the records."""

    lookup: pd.DataFrame  # the catalogue's lookup after this run
    # Records read back at a time when rows are derived again (about a batch's worth), so memory stays bounded.
    chunk_records: int = 500_000
    # Whether the run reads again a file loaded before (its stored records are replaced): most nights, no.
    redelivered: bool = True
    # Rows of batches' partials held before they are combined (10M events' batches hold well under this).
    FOLD_ROWS: ClassVar[int] = 500_000
    _users: pd.DataFrame = field(default_factory=user_rows.empty_users_partial, init=False)
    _points: pd.DataFrame = field(default_factory=levels.empty_points, init=False)
    _holes: pd.DataFrame = field(default_factory=levels.empty_holes, init=False)
    _pending: list[tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=list, init=False)
    _pending_rows: int = field(default=0, init=False)

    def add(self, users: pd.DataFrame, points: pd.DataFrame) -> None:
        """Take one batch's partials (``user_rows.users_partial`` rows and level-history points), in any order."""
        self._pending.append((users, points))
        self._pending_rows += len(users) + len(points)
        if self._pending_rows > self.FOLD_ROWS:
            self._fold()

    def _fold(self) -> None:
        if not self._pending:
            return
        # Within a run every partial knows its event's session and item, so users always combine.
        self._users, _ = user_rows.combine_users(self._users, *(users for users, _ in self._pending))
        self._points, self._holes = levels.combine_level_points(
            self._points, *(points for _, points in self._pending), holes=self._holes
        )
        self._pending.clear()
        self._pending_rows = 0

    @property
    def users(self) -> pd.DataFrame:
        """Each user's row from their latest event in the run (``user_rows.users_partial``)."""
        self._fold()
        return self._users

    @property
    def level_points(self) -> pd.DataFrame:
        """The run's level-history points (``levels.combine_level_points``)."""
        self._fold()
        return self._points

    @property
    def holes(self) -> pd.DataFrame:
        """Stretches of users' histories where the run's batches interleave (``levels.combine_level_points``)."""
        self._fold()
        return self._holes
