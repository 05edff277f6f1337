"""Staging folders no longer of use, removed at the start of a run (never failing it)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from pipeline.core.config import Config, is_url
from pipeline.load.base import Destination

log = logging.getLogger(__name__)


_RUN_ID = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{6}$")


def clean_staging(cfg: Config, dest: Destination, current: str) -> list[str]:
    """Remove staging folders that are no longer of use: those of killed runs (abandoned), of successful ones whose
    removal failed, and of failed runs older than ``staging.keep_failed_days``. Only folders named like a run that
    this warehouse's history records are touched (a run is recorded before it stages anything). Returns what was
    removed."""
    import fsspec

    root = cfg.staging.path.rstrip("/")
    fs, path = fsspec.core.url_to_fs(root, **(cfg.storage_options() if is_url(root) else {}))
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    runs = [n for n in names if _RUN_ID.match(n) and n != current]
    if not runs:
        return []
    status = {str(h["run_id"]): str(h["status"]) for h in dest.run_history(limit=10_000)}
    cutoff = datetime.now(UTC).timestamp() - cfg.staging.keep_failed_days * 86_400
    removed = []
    for name in runs:
        m = _RUN_ID.match(name)
        assert m is not None
        started = datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        state = status.get(name)
        # Only folders this warehouse knows to be dead: another warehouse (a test schema, a second environment)
        # may share the staging path, and its live runs' folders are none of this run's business.
        if state is None or state == "running" or (state == "succeeded" and cfg.staging.keep):
            continue
        if state in ("failed", "interrupted") and started >= cutoff:
            continue
        fs.rm(f"{path}/{name}", recursive=True)
        removed.append(name)
    if removed:
        log.info(
            "removed the staging folders of %d earlier runs (killed, or failed over %d days ago)",
            len(removed),
            cfg.staging.keep_failed_days,
        )
    return removed
