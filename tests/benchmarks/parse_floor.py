"""The least a pipeline run can take on a dataset: its own reading and parsing of the log files, and nothing else.

``make bench`` times this process beside the whole run and the DuckDB scripts. It imports what a run imports,
lists the logs, and reads and parses every batch with the run's own code (``LocalEngine.parsed_logs``: the
strict pyarrow parse, each record's file and line, the rejects); it transforms, stages and loads nothing. A run
does all of this work and more on the same two cores, so when this alone takes longer than a target allows, no
change to the transforms or the load can meet that target while the parse stays what it is.

    python -m tests.benchmarks.parse_floor    # the logs of config.yaml, as overridden by SPARKIFY__ variables
"""

from __future__ import annotations

import time

from pipeline.config import load_config
from pipeline.discover import discover
from pipeline.engine import LocalEngine


def main() -> None:
    start = time.perf_counter()
    cfg = load_config("config.yaml")
    fs, files = discover(cfg.source.log_data, cfg.storage_options())
    records = rejects = 0
    for batch in LocalEngine(cfg).parsed_logs(fs, files):
        records += batch.records
        rejects += len(batch.rejects)
        del batch  # one batch held at a time, as in a run
    print(f"{len(files)} files, {records:,} records, {rejects:,} rejected, {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
