import logging
import os
import sys

from .cli import main

code = main()
# The interpreter's own teardown (pandas, pyarrow and DuckDB unloading) adds 0.1-0.15 s to every command, a
# tenth of a small night's run. Output is flushed and logging shut down first; with Ray loaded, its exit
# handlers stop the local cluster, so the ordinary exit runs.
if "ray" in sys.modules:
    raise SystemExit(code)
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
