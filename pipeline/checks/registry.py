"""Every check, declared once: the load runs them all inside its transaction before COMMIT (a failed check rolls
the load back and the warehouse stays as it was); ``check`` runs those that need no run against what is
committed. A new check is a function from ``Target`` to checks, added to ``CHECKS``."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.checks.base import Check, Target
from pipeline.checks.integrity import integrity_checks
from pipeline.checks.levels import level_history_checks
from pipeline.checks.lookup import lookup_checks
from pipeline.checks.reconciliation import reconciliation_checks

CHECKS: list[Callable[[Target], list[Check]]] = [
    integrity_checks,
    level_history_checks,
    lookup_checks,
    reconciliation_checks,
]


def declared(target: Target) -> list[Check]:
    """The checks that apply at ``target``, in declaration order."""
    return [check for family in CHECKS for check in family(target)]
