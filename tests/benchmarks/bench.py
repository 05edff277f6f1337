"""``make bench``: the pipeline against a plain DuckDB SQL build, on the same synthetic files.

Prints, per stage and in total, seconds, records per second and peak memory, then the DuckDB SQL
build's wall time and peak memory, and the ratio. Each contender runs in its own fresh process (and
fresh database file) so neither benefits from the other's imports or memory.

    python tests/benchmarks/bench.py --songs 50000 --events 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}\n{out}")
    return wall, usage.ru_maxrss / 1024, out


def ensure_data(folder: Path, songs: int, events: int) -> None:
    if (folder / "log_data").exists() and (folder / "song_data").exists():
        return
    print(f"generating {songs:,} songs and {events:,} events in {folder} ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "generate",
            "--songs",
            str(songs),
            "--events",
            str(events),
            "--out",
            str(folder),
            "-q",
        ],
        check=True,
        cwd=ROOT,
    )


def time_song_read(folder: Path) -> tuple[int, float]:
    """Discover, fetch and parse the song files alone (the small-file path)."""
    sys.path.insert(0, str(ROOT))
    from pipeline.discover import discover
    from pipeline.extract import extract
    from pipeline.sources import SONG_SOURCE

    start = time.perf_counter()
    fs, files = discover(str(folder / "song_data"))
    x = extract(SONG_SOURCE, fs, files)
    return len(x.frame), time.perf_counter() - start


def warm(data: Path) -> None:
    """Read every file once, so both contenders start from the same (cached) disk state."""
    for p in data.rglob("*.json"):
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


def measure(songs: int, events: int, data: Path) -> dict:
    """Run both contenders on one dataset and print their figures."""
    ensure_data(data, songs, events)
    warm(data)
    size_mb = sum(p.stat().st_size for p in (data / "log_data").rglob("*.json")) / 1e6
    with tempfile.TemporaryDirectory(prefix="sparkify-bench-") as tmp:
        env = dict(os.environ)
        env.update(
            {
                "SPARKIFY__SOURCE__SONG_DATA": str(data / "song_data"),
                "SPARKIFY__SOURCE__LOG_DATA": str(data / "log_data"),
                "SPARKIFY__WAREHOUSE__DUCKDB__PATH": f"{tmp}/pipeline.duckdb",
                "SPARKIFY__STAGING__PATH": f"{tmp}/staging",
                "SPARKIFY__REJECTS__PATH": f"{tmp}/rejects",
                "SPARKIFY__RUN__LOCK_PATH": f"{tmp}/run.lock",
                "SPARKIFY__DEMO__GENERATE_IF_EMPTY": "false",
            }
        )
        wall, _, out = _run([sys.executable, "-m", "pipeline", "run", "--json", "-q", "-c", "config.yaml"], env)
        summary = json.loads(out)
        warm(data)
        # The run resets the kernel's high-water mark per stage, so the process peak is the stages' maximum.
        rss = max(summary["peak_memory_mb"].values())
        base_wall, base_rss, base_out = _run(
            [
                sys.executable,
                str(ROOT / "tests" / "benchmarks" / "duckdb_sql_build.py"),
                str(data / "song_data" / "*" / "*" / "*" / "*.json"),
                str(data / "log_data" / "*" / "*" / "*.json"),
                f"{tmp}/sql.duckdb",
            ],
            env,
        )
    songs_read, song_seconds = time_song_read(data)

    records = sum(summary["records_read"].values())
    print(f"\ndataset: {songs:,} song files, {events:,} events ({size_mb:,.0f} MB of logs)")
    print(f"{'stage':<10} {'seconds':>8} {'records/s':>12} {'peak MB':>8}")
    for stage, secs in summary["seconds"].items():
        rate = f"{records / secs:,.0f}" if secs > 0.01 else "-"
        print(f"{stage:<10} {secs:>8.2f} {rate:>12} {summary['peak_memory_mb'].get(stage, 0):>8,.0f}")
    print("(log batches are parsed in a background thread: 'extract' is the time spent waiting for them)")
    stages = sum(summary["seconds"].values())
    print(f"{'stages':<10} {stages:>8.2f} {records / stages:>12,.0f}")
    print(f"{'process':<10} {wall:>8.2f} {records / wall:>12,.0f} {rss:>8,.0f}   (wall, with interpreter start-up)")
    print(f"events/s end to end: {events / wall:,.0f}; {size_mb / wall:,.0f} MB/s of logs")
    print(f"song files alone: {songs_read:,} discovered, fetched and parsed in {song_seconds:.2f} s")
    print(f"DuckDB SQL build: {base_wall:.2f} s wall, {events / base_wall:,.0f} events/s, peak {base_rss:,.0f} MB")
    print(f"pipeline / DuckDB SQL wall time: {wall / base_wall:.2f}x")
    print("rows:", summary["rows_total"], "| DuckDB SQL build:", base_out.strip())
    return {"events": events, "wall": wall, "rss": rss, "base_wall": base_wall, "base_rss": base_rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=50_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", help="dataset folder (default build/bench/<songs>-<events>, generated if missing)")
    ap.add_argument(
        "--scale", action="store_true", help="run 50,000 songs/1M events and 100,000 songs/10M events, and compare"
    )
    args = ap.parse_args()

    if not args.scale:
        data = Path(args.data) if args.data else ROOT / "build" / "bench" / f"{args.songs}-{args.events}"
        r = measure(args.songs, args.events, data)
        print(f"\ntarget: pipeline within 1.5x of the DuckDB SQL build: {r['wall'] / r['base_wall']:.2f}x")
        return
    small = measure(50_000, 1_000_000, ROOT / "build" / "bench" / "50000-1000000")
    large = measure(100_000, 10_000_000, ROOT / "build" / "bench" / "100000-10000000")
    tp_small, tp_large = small["events"] / small["wall"], large["events"] / large["wall"]
    print("\n== scale: 1M -> 10M events ==")
    print(
        f"throughput: {tp_small:,.0f} -> {tp_large:,.0f} events/s ({tp_large / tp_small - 1:+.0%}; target: within -10%)"
    )
    print(
        f"peak memory: {small['rss']:,.0f} -> {large['rss']:,.0f} MB ({large['rss'] / small['rss'] - 1:+.0%}; "
        "target: under 3,000 MB and within 25%)"
    )
    print(
        f"10M wall: pipeline {large['wall']:.1f} s vs DuckDB SQL build {large['base_wall']:.1f} s "
        f"(peak {large['base_rss']:,.0f} MB); target: ahead"
    )


if __name__ == "__main__":
    main()
