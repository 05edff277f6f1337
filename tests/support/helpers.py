"""Running the real CLI in a subprocess, and reading back what it wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from pipeline.core.schema import TABLES

ROOT = Path(__file__).resolve().parents[2]
# SPEC.md's reference figures on the real sample.
REFERENCE = {"users": 97, "artists": 69, "songs": 71, "time": 6813, "songplays": 6820, "user_levels": 106}


def write_config(tmp: Path, song_data: Path | str, log_data: Path | str, **sections: Any) -> Path:
    cfg: dict[str, Any] = {
        "source": {"song_data": str(song_data), "log_data": str(log_data)},
        "demo": {"generate_if_empty": False},
        "staging": {"path": str(tmp / "staging")},
        "rejects": {"path": str(tmp / "rejects")},
        "warehouse": {"target": "duckdb", "duckdb": {"path": str(tmp / "wh.duckdb")}},
        # Retries as configured (four attempts), with a twentieth of the production pause: a test that meets a
        # transient fault waits 0.35 s rather than 7 s. A test about waiting sets its own.
        "run": {"retry_base_seconds": 0.05},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKIFY__")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


# Root reads any file; without these two capabilities a uid-0 process is bound by file modes like anyone else.
AS_UNPRIVILEGED = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
CAN_DROP_READS = os.geteuid() != 0 or shutil.which("setpriv") is not None


def cli_bound_by_file_modes(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``cli``, as a process that file permissions apply to (root without its read-anything capabilities)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKIFY__")}
    full_env.update(env or {})
    prefix = AS_UNPRIVILEGED if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def paused_run(config: Path, at: str, resume_when: Path | None = None) -> subprocess.Popen[str]:
    """A ``run`` started in the background and returned once it is paused at checkpoint ``at`` (it goes on when
    ``resume_when`` exists, or after a minute)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKIFY__")}
    env["SPARKIFY_FAULT_PAUSE_AT"] = at
    if resume_when is not None:
        env["SPARKIFY_FAULT_RESUME_WHEN"] = str(resume_when)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "-c", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if f"fault: paused at {at}" in line:
            return proc
    raise AssertionError(f"the run ended before reaching {at}: exit {proc.wait()}")


def history(config: Path) -> list[dict[str, Any]]:
    """The run history, newest first, as ``runs --json`` prints it."""
    proc = cli("runs", "--json", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, Any]] = json.loads(proc.stdout)
    return rows


def summary_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON summary a ``run --json`` printed last ({} if it printed none: it failed before its summary)."""
    lines = proc.stdout.strip().splitlines()
    summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return summary


def run_json(config: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = cli("run", "--json", "-q", "-c", str(config), env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return summary_of(proc)


def log_days(root: Path) -> list[Path]:
    """The log files under a source folder (``root/log_data``), in day order."""
    return sorted((root / "log_data").rglob("*.json"))


def read_tables(db_path: Path | str, schema: str = "main") -> dict[str, pd.DataFrame]:
    """Every star table, sorted by key, for exact comparison."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {
            t.name: con.execute(
                f'SELECT * FROM "{schema}"."{t.name}" ORDER BY ' + ", ".join(f'"{k}"' for k in t.primary_key)
            ).df()
            for t in TABLES
        }
    finally:
        con.close()


def assert_same_tables(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame], where: str = "") -> None:
    """Every table of ``expected`` equal, row for row and type for type, in ``actual``."""
    assert expected.keys() <= actual.keys(), f"{where}missing {sorted(expected.keys() - actual.keys())}"
    for name in expected:
        pd.testing.assert_frame_equal(actual[name], expected[name], obj=f"{where}{name}")


def write_sources(root: Path, songs: list[dict[str, Any]], logs: dict[str, list[dict[str, Any]]]) -> None:
    """Song files (one record each) and daily log files (name -> events) under ``root``."""
    for i, rec in enumerate(songs):
        path = root / "song_data" / "A" / "A" / "A" / f"TR{i:016d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    (root / "song_data").mkdir(parents=True, exist_ok=True)
    for name, events in logs.items():
        path = root / "log_data" / "2018" / "11" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(json.dumps(e) for e in events))
    (root / "log_data").mkdir(parents=True, exist_ok=True)


def run_here(config: Path, full_refresh: bool = False) -> Any:
    """One run in this process, through ``runner.run`` (what the CLI calls)."""
    from pipeline.core.config import load_config
    from pipeline.run.runner import RunOptions, run

    return run(load_config(config), RunOptions(full_refresh=full_refresh))


def no_process_left(pids: set[int], what: str) -> None:
    """Fail unless every process in ``pids`` has ended within 10 s (Linux: by /proc)."""
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if Path(f"/proc/{p}").exists()]
    assert not left, f"{what}: {left}"


def no_thread_left(prefix: str) -> None:
    """Fail unless every thread whose name starts with ``prefix`` has ended within 5 s (a background thread
    ends after the item it is working on, not at once)."""
    deadline = time.monotonic() + 5
    while any(t.name.startswith(prefix) for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith(prefix) for t in threading.enumerate())


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (Linux): its children, theirs, and so on."""
    out: set[int] = set()
    stack = [pid]
    while stack:
        try:
            children = Path(f"/proc/{stack.pop()}/task").glob("*/children")
            found = {int(c) for f in children for c in f.read_text().split()}
        except OSError:
            continue
        stack.extend(found - out)
        out |= found
    return out
