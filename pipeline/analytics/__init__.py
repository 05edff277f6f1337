"""The analysts' side: the questions as SQL (``queries``), the same on every warehouse, and the one-page report."""
