"""The least a pipeline run can take on a dataset: its own reading and parsing of the log files, and nothing else.

``make bench`` times this process beside the whole run and the DuckDB scripts. It starts as a run starts (the
same process settings, the same imports), lists the logs, and reads and parses every batch with the run's own
code (``LocalEngine.parsed_logs``: the strict pyarrow parse, each record's file and line, the rejects); it
transforms, stages and loads nothing, and leaves as a run leaves, without the interpreter's teardown. A run does
all of this work and more on the same two cores, so when this alone takes longer than a target allows, no change
to the transforms or the load can meet that target while the parse stays what it is.

    python -m tests.benchmarks.parse_floor    # the logs of config.yaml, as overridden by SPARKIFY__ variables
"""

from __future__ import annotations

import os
import sys
import time

from pipeline.cli import process_defaults


def main() -> None:
    start = time.perf_counter()
    process_defaults()
    # After the process settings, as in a run: pyarrow's allocator is chosen when it is first imported.
    from pipeline.config import load_config
    from pipeline.discover import discover
    from pipeline.engine import LocalEngine

    cfg = load_config("config.yaml")
    fs, files = discover(cfg.source.log_data, cfg.storage_options())
    records = rejects = 0
    for batch in LocalEngine(cfg).parsed_logs(fs, files):
        records += batch.records
        rejects += len(batch.rejects)
        del batch  # one batch held at a time, as in a run
    print(f"{len(files)} files, {records:,} records, {rejects:,} rejected, {time.perf_counter() - start:.2f} s")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
