"""The built-in demo dataset: generated into the repository's own demo folders when they are empty, nowhere
else."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core.config import DEMO_ROOT, Config
from pipeline.demo.generate import generate, is_empty

log = logging.getLogger(__name__)

# The demo shows what a warehouse matched to a fitting catalogue looks like: most plays are of catalogue songs,
# some far more played than others (the real sample, with 71 songs for 6,820 plays, matches one).
DEMO_CATALOGUE_SHARE = 0.9
DEMO_SKEW = 3.0


def ensure_demo_data(cfg: Config) -> bool:
    """Fill the built-in demo folders with the synthetic dataset when they are empty, so a fresh clone just runs.

    Only ever there: a config that points anywhere else (a typo, a mount that is not up) must not get
    invented data loaded into its warehouse. A missing source is then an error, an empty one an empty run.
    """
    songs, logs = Path(cfg.source.song_data), Path(cfg.source.log_data)
    if not cfg.demo.generate_if_empty or (songs, logs) != (DEMO_ROOT / "song_data", DEMO_ROOT / "log_data"):
        return False
    if not (is_empty(songs) and is_empty(logs)):
        return False
    log.info(
        "the demo folders %s are empty: generating the demo dataset (%d songs, %d events)",
        DEMO_ROOT,
        cfg.demo.songs,
        cfg.demo.events,
    )
    generate(
        songs,
        logs,
        songs=cfg.demo.songs,
        events=cfg.demo.events,
        seed=cfg.demo.seed,
        catalogue_share=DEMO_CATALOGUE_SHARE,
        skew=DEMO_SKEW,
    )
    return True
