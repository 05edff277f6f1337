import contextlib
import logging
import os
import sys

from .cli import main

if __name__ == "__main__":
    code = main()
    # The interpreter's own teardown (pandas, pyarrow and DuckDB unloading) adds 0.1-0.15 s to every command, a
    # tenth of a small night's run. Connections, the lock and every file the run writes are closed by then;
    # output is flushed and logging shut down first. With Ray loaded, its exit handlers stop the local
    # cluster, so the ordinary exit runs.
    if "ray" in sys.modules:
        raise SystemExit(code)
    with contextlib.suppress(Exception):  # a full disk or a closed pipe must not change the run's exit code
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
