"""The synthetic demo dataset: what ``make run`` loads on a fresh clone."""
