"""The engine factory, apart from the engine base: the local engine never imports the Ray one, and the Ray
module (which builds on the base) is imported only when configured."""

from __future__ import annotations

from pipeline.core.config import Config
from pipeline.run.engine import Engine, LocalEngine


def engine_for(cfg: Config) -> Engine:
    if cfg.engine == "ray":
        from pipeline.run.distributed import RayEngine

        return RayEngine(cfg)
    from pipeline.run.pool import PooledEngine, workers_for

    workers = workers_for(cfg)
    return PooledEngine(cfg, workers) if workers > 1 else LocalEngine(cfg)
