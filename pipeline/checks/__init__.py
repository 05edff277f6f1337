"""Data-quality checks, derived from the schema and run as SQL in the warehouse (``registry.CHECKS``)."""
