"""``user_levels`` as a history: periods that tile, each a change, one current per user at the users' level."""

from __future__ import annotations

from pipeline.checks.base import Check, Target


def level_history_checks(target: Target) -> list[Check]:
    """``user_levels`` is a history: each user's periods follow one another with no gap or overlap, each
    changes the level, and exactly one is current, at the level ``users`` holds."""
    levels = target.dialect.qualified(target.schema, "user_levels")
    users = target.dialect.qualified(target.schema, "users")
    ordered = (
        'SELECT "user_id", "level", "valid_from", "valid_to", '
        'LEAD("valid_from") OVER (PARTITION BY "user_id" ORDER BY "valid_from") AS next_from, '
        'LAG("level") OVER (PARTITION BY "user_id" ORDER BY "valid_from") AS prev_level '
        f"FROM {levels}"
    )
    return [
        Check(
            "user_levels.periods_tile",
            f'SELECT COUNT(*) FROM ({ordered}) p WHERE (p."valid_to" IS NULL AND p.next_from IS NOT NULL) '
            'OR (p."valid_to" IS NOT NULL AND p.next_from IS NULL) '
            'OR p."valid_to" <> p.next_from',
            0,
            # Ordered by valid_from, a period ending where the next starts also ends after it starts.
            "periods that overlap the next one or leave a gap before it",
        ),
        Check(
            "user_levels.each_period_changes_level",
            f'SELECT COUNT(*) FROM ({ordered}) p WHERE p.prev_level = p."level"',
            0,
            "periods at the same level as the period before (they should be one)",
        ),
        Check(
            "user_levels.one_current_per_user",
            f'SELECT COUNT(*) FROM {users} u LEFT JOIN (SELECT "user_id", COUNT(*) AS n FROM {levels} '
            'WHERE "valid_to" IS NULL GROUP BY "user_id") c ON c."user_id" = u."user_id" WHERE COALESCE(c.n, 0) <> 1',
            0,
            "users without exactly one current level period",
        ),
        Check(
            "user_levels.current_is_users_level",
            f'SELECT COUNT(*) FROM {users} u JOIN {levels} l ON l."user_id" = u."user_id" '
            'AND l."valid_to" IS NULL WHERE l."level" <> u."level"',
            0,
            "users whose current period's level is not users.level",
        ),
    ]
