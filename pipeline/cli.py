"""Command line: ``python -m pipeline <command>``. Exit codes are part of the interface (see README)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pipeline.core.config import Config, ConfigError, check_window, describe_keys, is_url, load_config
from pipeline.core.errors import (
    AlreadyRunning,
    CheckFailed,
    FetchError,
    Interrupted,
    SchemaMissing,
    SchemaOutdated,
    SourceError,
    TakenOver,
    TooManyRejects,
    WarehouseBusy,
    WarehouseUnreachable,
)
from pipeline.ops import logs

if TYPE_CHECKING:
    from pipeline.load.base import Destination

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_CHECKS = 3
EXIT_REJECTS = 4
EXIT_SOURCE = 5
EXIT_HELD = 6  # loaded, but a re-delivery that would lose most of what it replaces was held back
EXIT_UNREACHABLE = 69  # EX_UNAVAILABLE: the warehouse refused or did not answer the connection
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock, or the DuckDB file; try again later

log = logging.getLogger("pipeline")


def _config(args: argparse.Namespace, connecting: bool = True) -> Config:
    path = args.config
    if path is None and Path("config.yaml").exists():
        path = "config.yaml"
    cfg = load_config(path, connecting=connecting)
    logs.protect_env(cfg.warehouse.redshift.password_env)
    return cfg


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    check_window(args.full_refresh, args.since, args.until)
    from pipeline.extract.ahead import list_ahead
    from pipeline.ops.lock import new_run_id, single_flight
    from pipeline.ops.signals import handled

    run_id = new_run_id()
    # The lock first: a run that may not start (exit 75) must not leave a helper listing beside the one that runs.
    with single_flight(cfg.run.lock_path, run_id), handled():
        listings = list_ahead(cfg)  # while the imports below take their half second
        try:
            with run_collector() as settle:
                from pipeline.run.runner import RunOptions, run

                settle()
                options = RunOptions(
                    full_refresh=args.full_refresh,
                    since=args.since,
                    until=args.until,
                    audit=args.audit,
                    accept_shrunk=frozenset(u if is_url(u) else os.path.abspath(u) for u in args.accept_shrunk or ()),
                )
                try:
                    summary = run(cfg, options, run_id=run_id, listings=listings, locked=True)
                except BaseException as exc:
                    s = getattr(exc, "summary", None)
                    if s is not None:
                        print(s.to_json() if args.json else s.to_text(), file=sys.stdout if args.json else sys.stderr)
                    raise
        finally:
            if listings is not None:
                listings.close()
    print(summary.to_json() if args.json else summary.to_text())
    if summary.files_held:
        log.error(
            "%d re-delivered file(s) held back: each would lose more than rejects.max_shrink of the records loaded "
            "from the version it replaces, which stays. Accept one with: python -m pipeline run --accept-shrunk URL",
            len(summary.files_held),
        )
        return EXIT_HELD
    return EXIT_OK


@contextmanager
def run_collector() -> Iterator[Callable[[], None]]:
    """The garbage collector's pace during a run, restored after it; yields ``settle``, to be called once the
    run's modules are imported.

    At the default pace (every 700 new objects) most collections walk the objects pandas and pyarrow leave at
    import: those are set aside by ``settle`` (``gc.freeze``), and young objects are collected every 20,000 new
    ones (the older generations at the default ratio). A caller that froze objects of its own keeps them frozen.
    """
    pace = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0

    def settle() -> None:
        if freeze:
            gc.freeze()

    gc.set_threshold(20_000, pace[1], pace[2])
    try:
        yield settle
    finally:
        if freeze:
            gc.unfreeze()
        gc.set_threshold(*pace)


def cmd_create_schema(args: argparse.Namespace) -> int:
    from pipeline.load import destination_for

    dest = destination_for(_config(args))
    dest.create_schema()
    print(f"star schema created in {dest.describe()} (schema {dest.schema})")
    return EXIT_OK


def cmd_drop_schema(args: argparse.Namespace) -> int:
    from pipeline.load import destination_for

    dest = destination_for(_config(args))
    if not args.yes:
        print(f"refusing to drop the pipeline's tables in {dest.describe()} without --yes", file=sys.stderr)
        return EXIT_CONFIG
    dest.drop_schema()
    dest.unpublish()
    print(
        f"dropped from {dest.describe()} (schema {dest.schema}): the star tables, the kept source records, "
        "the ledger and the run history; the next run rebuilds everything from the source"
    )
    return EXIT_OK


def _existing(args: argparse.Namespace) -> Destination:
    """The configured warehouse, read-only, for a command that only reads: one that is not there is an error
    naming where it looked (exit 2), never an empty warehouse created by the look."""
    from pipeline.load import destination_for

    dest = destination_for(_config(args))
    if not dest.exists():
        raise SchemaMissing(
            f"no warehouse at {dest.describe()}: nothing has been loaded there yet. Check warehouse.* in the config; "
            "`python -m pipeline run` creates and loads it."
        )
    return dest


def cmd_check(args: argparse.Namespace) -> int:
    dest = _existing(args).reader(published=False)
    results = dest.check()
    for r in results:
        print(r.describe())
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed")
    return EXIT_CHECKS if failed else EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from pipeline.demo.generate import generate

    out = Path(args.out)
    res = generate(
        out / "song_data",
        out / "log_data",
        songs=args.songs,
        events=args.events,
        seed=args.seed,
        days=args.days,
    )
    print(
        f"wrote {res.song_files:,} song files and {res.events:,} events in {res.log_files} daily files "
        f"({res.bytes_written / 1e6:,.1f} MB) under {out}"
    )
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    dest = _existing(args).reader(published=False)
    rows = dest.run_history(args.limit)
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no run recorded in {dest.describe()} (schema {dest.schema}) yet")
    for r in rows:
        ended = r["ended_at"] or "-"
        print(
            f"{r['run_id']:28} {r['status']:10} {r['started_at']!s:26} -> {ended!s:26} "
            f"files {r['files_read'] or 0:>7} records {r['records_read'] or 0:>9} "
            f"rejected {r['records_rejected'] or 0:>6}  {r['error'] or ''}"[:400]
        )
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.analytics.queries import Analytics
    from pipeline.analytics.report import write

    analytics = Analytics(_existing(args))
    # What it read: the read copy where the warehouse publishes one, never the file a night loads.
    out = write(analytics, analytics.dest.describe(), Path(args.out))
    print(f"report written to {out}")
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _config(args, connecting=False)
    for key, env, default in describe_keys():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        print(f"{key:28} {env:40} {node!r}  (default {default!r})")
    return EXIT_OK


def _run_options(r: argparse.ArgumentParser) -> None:
    r.add_argument("--json", action="store_true", help="print the run summary as JSON (for log shippers)")
    r.add_argument(
        "--full-refresh",
        action="store_true",
        help="reread every file in the source and rebuild every table in one transaction; files that have left "
        "the source keep their rows (from their kept records)",
    )
    r.add_argument(
        "--accept-shrunk",
        action="append",
        metavar="URL",
        help="load this re-delivered file although it holds far fewer records than the version loaded before "
        "(a run holds such a file back and exits 6); repeat for several",
    )
    r.add_argument(
        "--audit",
        action="store_true",
        help="check every row of every table in this run's load, not only what it writes (a load does so anyway "
        "when no load has for run.audit_days)",
    )
    r.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="only log files dated on or after this day")
    r.add_argument("--until", type=_date, metavar="YYYY-MM-DD", help="only log files dated on or before this day")


def _runs_options(h: argparse.ArgumentParser) -> None:
    h.add_argument("--limit", type=int, default=20)
    h.add_argument("--json", action="store_true")


def _drop_options(d: argparse.ArgumentParser) -> None:
    d.add_argument("--yes", action="store_true", help="really drop")


def _generate_options(g: argparse.ArgumentParser) -> None:
    g.add_argument("--songs", type=int, default=2_000, help="song files (default 2,000)")
    g.add_argument("--events", type=int, default=20_000, help="events (default 20,000)")
    g.add_argument("--days", type=int, default=30, help="daily log files (default 30)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--out", required=True, help="output folder")


def _report_options(rp: argparse.ArgumentParser) -> None:
    rp.add_argument("--out", default="build/report.html", help="output file (default build/report.html)")


def _no_options(parser: argparse.ArgumentParser) -> None:
    return None


# The commands, in the order --help lists them: name, handler, its options, one-line help, description.
_COMMANDS: tuple[
    tuple[str, Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None], str, str], ...
] = (
    (
        "run",
        cmd_run,
        _run_options,
        "run the whole pipeline once",
        "Discover, extract, transform, stage and load; then check, in one transaction.",
    ),
    (
        "runs",
        cmd_runs,
        _runs_options,
        "show the run history",
        "The latest runs recorded in the warehouse, newest first.",
    ),
    (
        "create-schema",
        cmd_create_schema,
        _no_options,
        "create the pipeline's tables if missing",
        "Create the star tables, the kept source records, the ledger and the run history (idempotent).",
    ),
    (
        "drop-schema",
        cmd_drop_schema,
        _drop_options,
        "drop every table the pipeline owns",
        "Drop the star tables, the kept source records, the ledger and the run history (not the schema itself). "
        "The next run reloads every file still in the source; records of files that have left it are lost. "
        "Needs --yes.",
    ),
    (
        "check",
        cmd_check,
        _no_options,
        "run the data-quality checks alone",
        "Primary keys unique and not null; foreign keys present. Exit 3 on failure.",
    ),
    (
        "generate",
        cmd_generate,
        _generate_options,
        "write a synthetic Sparkify dataset",
        "Deterministic synthetic data: OUT/song_data and OUT/log_data.",
    ),
    (
        "report",
        cmd_report,
        _report_options,
        "write an HTML report of the analytics",
        "A self-contained HTML page (charts embedded) for the current warehouse.",
    ),
    (
        "config",
        cmd_config,
        _no_options,
        "show every config key, its variable and value",
        "Every key with its environment variable, effective value and default.",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="config file (default: ./config.yaml if present)")
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Sparkify: song and event JSON into a star schema (DuckDB or Redshift).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, handler, options, summary, description in _COMMANDS:
        command = sub.add_parser(name, parents=[common], help=summary, description=description)
        options(command)
        command.set_defaults(func=handler)
    return p


def arrow_allocator() -> str:
    """``jemalloc`` where this pyarrow was built with it, else ``system`` (the C library's): never mimalloc.

    Read from pyarrow's build configuration, not by importing it (a command that transforms nothing never loads
    pyarrow, and once loaded its pool is chosen). Its x86-64 Linux wheels carry jemalloc; its ARM Linux wheels
    (since pyarrow 18) and macOS ones do not, and naming a backend a build lacks prints a warning and falls back
    to mimalloc. On macOS the C library's allocator is kept, as measured before."""
    if sys.platform != "linux":
        return "system"
    from importlib.util import find_spec  # finds the package the run will import, without importing it

    spec = find_spec("pyarrow")
    if spec is None or spec.origin is None:
        return "system"
    try:
        text = Path(spec.origin).with_name("include").joinpath("arrow", "util", "config.h").read_text(errors="replace")
    except OSError:
        return "system"
    return "jemalloc" if re.search(r"^#define ARROW_JEMALLOC\s*$", text, re.MULTILINE) else "system"


def process_defaults() -> None:
    """The process settings every run has, set before numpy and pyarrow are imported (nothing here imports them);
    variables the operator has set are left alone."""
    # numpy's OpenBLAS starts a thread per core that spins after any use, taking a core from the parser; the
    # pipeline does no linear algebra. pyarrow's default allocator (mimalloc) hands large freed buffers back and
    # takes fresh ones, which the kernel must zero; jemalloc reuses them and fragments less (docs/decisions.md).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", arrow_allocator())


def main(argv: list[str] | None = None) -> int:
    process_defaults()
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose, args.quiet)
    try:
        code: int = args.func(args)
        return code
    except Interrupted as exc:
        return _interrupted(exc.signum, exc)
    except KeyboardInterrupt as exc:
        return _interrupted(signal.SIGINT, exc)
    except Exception as exc:
        from pipeline.ops.signals import last_received

        if last_received() is not None:  # a query the signal interrupted reports it as its own error
            return _interrupted(last_received() or signal.SIGINT, exc)
        for kinds, exit_code, message in _EXITS:
            if isinstance(exc, kinds):
                log.error(message, exc)
                return exit_code
        notes = "".join(f"\n  {n}" for n in getattr(exc, "__notes__", []))
        log.error("run failed: %s: %s%s", type(exc).__name__, exc, notes, exc_info=args.verbose)
        return EXIT_ERROR


# The errors with an exit code of their own (see README): their types, the code, and the logged message.
_EXITS: tuple[tuple[tuple[type[Exception], ...], int, str], ...] = (
    ((ConfigError,), EXIT_CONFIG, "configuration error: %s"),
    ((SchemaOutdated, SchemaMissing), EXIT_CONFIG, "%s"),
    ((CheckFailed,), EXIT_CHECKS, "%s\nThe load was rolled back: the warehouse is as it was before this run."),
    ((TakenOver,), EXIT_LOCKED, "not loaded: %s"),
    ((AlreadyRunning,), EXIT_LOCKED, "not started: %s"),
    ((WarehouseBusy,), EXIT_LOCKED, "warehouse busy: %s"),
    ((WarehouseUnreachable,), EXIT_UNREACHABLE, "warehouse unreachable: %s"),
    ((TooManyRejects,), EXIT_REJECTS, "%s"),
    ((SourceError, FetchError), EXIT_SOURCE, "source error: %s"),
)


def _interrupted(signum: int, exc: BaseException) -> int:
    name = signal.Signals(signum).name
    summary = getattr(exc, "summary", None)
    if summary is not None and summary.status == "succeeded":
        log.error("interrupted by %s after the load committed: this run's data is loaded", name)
    else:
        log.error("interrupted by %s; the load, if it had started, was rolled back", name)
    return 128 + signum


def console() -> NoReturn:
    """``python -m pipeline`` and the ``sparkify`` script: ``main``, then out without the interpreter's teardown.

    The teardown (pandas, pyarrow and DuckDB unloading) is a noticeable share of a short command. Connections, the
    lock and every file the run writes are closed by then; output is flushed and logging shut down first. With
    Ray loaded, its exit handlers stop the local cluster, so the ordinary exit runs.
    """
    code = main()
    if "ray" in sys.modules:
        raise SystemExit(code)
    with contextlib.suppress(Exception):  # a full disk or a closed pipe must not change the run's exit code
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
