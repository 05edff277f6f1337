"""A lower bound on a pipeline run: its own reading and parsing of the log files, and nothing else.

``make bench`` times this process beside the whole run and the DuckDB scripts. It starts as a run starts (the
process settings of ``cli.process_defaults``, the collector's pace of ``cli.run_collector``), lists the logs, and
reads and parses every batch with the code of a run's parsing thread (``LocalEngine.parsed_logs``: the strict
pyarrow parse, each record's file and line, the rejects), handing memory back after each batch as a run does; it
transforms, stages and loads nothing, imports neither the runner nor DuckDB, and leaves as a run leaves, without
the interpreter's teardown. A run does all of this work and more on the same cores, so when this alone takes
longer than a target allows, no change to the transforms or the load can meet that target while the parse stays
what it is.

    python -m tests.benchmarks.parse_floor    # the logs of config.yaml, as overridden by SPARKIFY__ variables

It prints what it parsed as JSON (files, records, rejected) for the bench to hold against the run's own counts.
"""

from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

from pipeline.cli import process_defaults, run_collector


def main() -> NoReturn:
    process_defaults()
    with run_collector() as settle:
        # After the process settings, as in a run: pyarrow's allocator is chosen when it is first imported.
        from pipeline.core.config import load_config
        from pipeline.extract.discover import discover
        from pipeline.ops import memory
        from pipeline.run.engine import LocalEngine

        settle()
        cfg = load_config("config.yaml")
        if cfg.engine != "local":
            sys.exit(f"the parse alone is the local engine's; this configuration runs on {cfg.engine!r}")
        fs, files = discover(cfg.source.log_data, cfg.storage_options())
        records = rejected = 0
        for batch in LocalEngine(cfg).parsed_logs(fs, files):
            records += batch.records
            rejected += len(batch.rejects)
            del batch  # let go at once: a run holds up to three (one transformed, one queued, one parsed)
            memory.release()
    print(json.dumps({"files": len(files), "records": records, "rejected": rejected}))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
