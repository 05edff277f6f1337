"""A run's own check: every play it wrote is in the warehouse. It reads the run's work relations, so it runs
inside the load only (the audit of what is committed has no run to compare with)."""

from __future__ import annotations

from pipeline.checks.base import Check, Target
from pipeline.core.schema import SONGPLAYS, fixed
from pipeline.core.sql import Dialect, column_list, quote


def reconciliation_checks(target: Target) -> list[Check]:
    if target.relations is None:
        return []
    rel = target.relations
    return [
        reconciliation_check(
            target.dialect,
            target.schema,
            rel.get(SONGPLAYS.name),
            rel[fixed(SONGPLAYS.name)],
            rel[fixed("songplay_keys")],
        )
    ]


def reconciliation_check(dialect: Dialect, schema: str, staged: str | None, derived: str, contested: str) -> Check:
    """Every play this run wrote is in the warehouse: the staged ones that were not contested, and those
    derived again for contested events."""
    t = dialect.qualified(schema, SONGPLAYS.name)
    # Matched on the play's session too, which its id determines: the warehouse skips earlier nights' blocks.
    cols = column_list(("songplay_id", *SONGPLAYS.locality))
    fresh = (
        f'SELECT {cols} FROM {staged} WHERE "songplay_id" NOT IN (SELECT "songplay_id" FROM {contested}) UNION ALL '
        if staged
        else ""
    )
    wrote = f"({fresh}SELECT {cols} FROM {derived})"
    match = " AND ".join(f"e.{quote(c)} = s.{quote(c)}" for c in ("songplay_id", *SONGPLAYS.locality))
    # The ids written are distinct (a staged play that was contested is written once, derived again), so every one is
    # in the warehouse exactly when as many distinct ids match as were written; repeats are the key check's.
    return Check(
        "songplays.reconciles_with_events",
        f'SELECT (SELECT COUNT(*) FROM {wrote} e) - (SELECT COUNT(DISTINCT s."songplay_id") FROM {t} s '
        f"WHERE EXISTS (SELECT 1 FROM {wrote} e WHERE {match}))",
        0,
        "plays of this run's NextSong events (with a userId) missing from the warehouse",
    )
