"""What every stage shares: the schema declared once, each warehouse's SQL dialect, the configuration, the errors."""
