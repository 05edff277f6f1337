"""Warehouse destinations: one interface (``base.Destination``), one small module per target."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from .base import Destination


def destination_for(config: Config) -> Destination:
    """The configured target. Imports are local so DuckDB users never import the Redshift driver."""
    target = config.warehouse.target
    if target == "duckdb":
        from .duckdb import DuckDBDestination

        return DuckDBDestination(
            config.warehouse.duckdb.path, config.warehouse.schema_name, config.warehouse.duckdb.memory_limit
        )
    if target == "redshift":
        from .redshift import RedshiftDestination

        return RedshiftDestination(config)
    raise ValueError(f"warehouse.target: unknown target {target!r}")
