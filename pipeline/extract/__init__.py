"""Sources to records: list a format's files, fetch them, parse them behind the format seam (``formats``), set bad
records aside with their file and line."""
