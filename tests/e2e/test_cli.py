"""The command line's own settings of the process: what it changes for a run, and what it gives back."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli
from tests.support.helpers import ROOT, write_config
from tests.support.helpers import cli as run_cli


def test_a_run_gives_back_the_collectors_pace_and_what_its_caller_froze(
    sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() sets these for the process it starts; here they are this process's, restored afterwards.
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    pace = gc.get_threshold()
    assert cli.main(["run", "-q", "-c", str(config)]) == 0
    assert gc.get_threshold() == pace and gc.get_freeze_count() == 0  # a notebook's process is as it was
    kept = object()
    gc.freeze()  # a caller's own frozen objects stay frozen
    try:
        assert cli.main(["run", "-q", "-c", str(config)]) == 0
        # (fewer than were frozen: some have been freed since)
        assert gc.get_freeze_count() > 0 and gc.get_threshold() == pace
    finally:
        gc.unfreeze()
        del kept


def test_the_command_line_sets_pyarrows_allocator_and_numpys_threads_before_they_load(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "songs", tmp_path / "logs")
    script = (
        "import os, sys\n"
        "from pipeline.cli import main\n"
        f"main(['config', '-c', {str(config)!r}])\n"
        "import pyarrow as pa\n"
        "print(pa.default_memory_pool().backend_name, os.environ['OPENBLAS_NUM_THREADS'], file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "OPENBLAS_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # jemalloc where this pyarrow has it (Linux x86-64 wheels), else the C library's; never a warning and mimalloc.
    import pyarrow as pa

    built_with = "jemalloc" in pa.supported_memory_backends()
    assert proc.stderr.split()[-2:] == ["jemalloc" if built_with and sys.platform == "linux" else "system", "1"]
    assert "Unsupported backend" not in proc.stderr


def test_a_pyarrow_built_without_jemalloc_gets_the_c_librarys_allocator_not_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = tmp_path / "pyarrow" / "include" / "arrow" / "util" / "config.h"
    header.parent.mkdir(parents=True)
    (tmp_path / "pyarrow" / "__init__.py").write_text("")
    header.write_text("#define ARROW_MIMALLOC\n/* #undef ARROW_JEMALLOC */\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.delitem(sys.modules, "pyarrow")  # found on the path, as by a command that has not loaded it yet
    assert cli.arrow_allocator() == "system"
    header.write_text("#define ARROW_JEMALLOC\n#define ARROW_MIMALLOC\n")
    assert cli.arrow_allocator() == ("jemalloc" if sys.platform == "linux" else "system")


def test_the_sparkify_script_is_the_same_command_with_the_same_exit_codes(tmp_path: Path) -> None:
    """The installed script leaves as ``python -m pipeline`` does (no interpreter teardown): output flushed, exit
    code kept."""
    from importlib.metadata import entry_points

    assert entry_points(group="console_scripts")["sparkify"].value == "pipeline.cli:console"
    script = Path(sys.executable).with_name("sparkify")
    config = write_config(tmp_path, tmp_path / "songs", tmp_path / "logs")
    # Buffered output, as under cron or a pipe: what a quick exit must not lose.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKIFY__") and k != "PYTHONUNBUFFERED"}

    def sparkify(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=120)

    shown = sparkify("config", "-c", str(config))
    assert shown.returncode == 0 and shown.stdout == run_cli("config", "-c", str(config)).stdout
    assert str(tmp_path / "wh.duckdb") in shown.stdout
    empty = sparkify("check", "-c", str(config))
    assert empty.returncode == 2 and "nothing has been loaded there yet" in empty.stderr
