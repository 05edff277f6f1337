"""Warehouse destinations: one interface (``base.Destination``), one small module per target, and this registry.

A new warehouse is a module with a ``Destination`` subclass and a ``from_config(config)`` factory, plus one
entry below (and its name in ``config.TARGETS``, which a test holds equal to this registry). Modules are imported
only when configured, so DuckDB users never import the Redshift driver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.core.config import Config
    from pipeline.load.base import Destination

# warehouse.target -> the module whose ``from_config`` builds it.
DESTINATIONS: dict[str, str] = {
    "duckdb": "pipeline.load.duckdb",
    "redshift": "pipeline.load.redshift",
}


def destination_for(config: Config) -> Destination:
    """The configured target."""
    target = config.warehouse.target
    if target not in DESTINATIONS:
        raise ValueError(f"warehouse.target: unknown target {target!r}")
    destination: Destination = importlib.import_module(DESTINATIONS[target]).from_config(config)
    return destination
