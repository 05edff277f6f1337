"""Sparkify pipeline: song metadata and event logs (JSON) to a star schema in DuckDB or Redshift.

See docs/architecture.md for the packages and how data flows through them.
"""
