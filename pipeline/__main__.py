import contextlib
import logging
import os
import sys

# numpy's OpenBLAS starts a thread per core at import, which spins after any use, taking the second core from the
# parser; the pipeline does no linear algebra.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# pyarrow's default allocator (mimalloc) hands large freed buffers back to the system and takes fresh ones for
# the next batch, which the kernel must zero: at 1M events, 5.3-7.6 s of system time with it, 3.6-4.5 s with
# the C library's allocator, which reuses them (memory.release trims what is left after each batch).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

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
