"""``make bench``: the pipeline against two DuckDB-only builds of the same five tables, on the same files.

Contenders, each in its own fresh process and database file, alternated run by run so neither gets a warmer
machine: the whole ``python -m pipeline run`` process (from the shell prompt back to it), as configured (in one
process below four cores, its batches in worker processes from four up) and the other way, the hand-tuned DuckDB
script
(``duckdb_hand_tuned.py``) and the plain ``read_json`` build (``duckdb_sql_build.py``). Beside them, the
pipeline's own reading and parsing of the logs and nothing else (``parse_floor.py``): the least any run that
parses this way can take, so a target below it is out of reach of every other change. Peak memory is
sampled from outside, every 10 ms, over the process and its children (VmRSS from /proc), and also read from
the kernel's own high-water mark at exit (``ru_maxrss``); the two agree unless something resets the latter.
Each pipeline run also reports its work (CPU-seconds, workers included) and its span (its wall time less the
batches' phase, plus the longest task): on a small machine, what more cores could give.

    python tests/benchmarks/bench.py --songs 50000 --events 1000000 --repeat 3
    python tests/benchmarks/bench.py --scale      # the real sample, 15k songs, 1M and 10M events
    python tests/benchmarks/bench.py --cpus 0,1   # every contender on CPUs 0 and 1: the machine with two cores

Then a night (the dataset's last log day added to a warehouse holding the others) and the commands that
transform nothing (``--help``, ``config``, ``runs``, ``check``), timed the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "data" / "sparkify-sample"


@dataclass
class Timing:
    wall: float
    peak_mb: float  # sampled from outside
    maxrss_mb: float  # the kernel's figure at exit
    out: str
    # CPU seconds of the process and the descendants it waited for (its workers), as the kernel counts them.
    cpu: float = 0.0


def _tree_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and every descendant (Ray or DuckDB helpers would count too)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{p}/task/{p}/children") as fh:
                stack.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run(cmd: list[str], env: dict[str, str]) -> Timing:
    """One child process: wall seconds from fork to exit, peak memory sampled and as the kernel reports it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True, cwd=ROOT)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss_kb(proc.pid))
                done.wait(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read()
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()}\n{text}")
    return Timing(wall, peak / 1024, usage.ru_maxrss / 1024, text, usage.ru_utime + usage.ru_stime)


def ensure_data(folder: Path, songs: int, events: int, days: int = 30) -> None:
    if (folder / "log_data").exists() and (folder / "song_data").exists():
        return
    print(f"generating {songs:,} songs and {events:,} events over {days} days in {folder} ...", flush=True)
    sizes = ["--songs", str(songs), "--events", str(events), "--days", str(days)]
    subprocess.run(
        [sys.executable, "-m", "pipeline", "generate", "-q", "--out", str(folder), *sizes], check=True, cwd=ROOT
    )


# The histories a night is measured on (issue 30): the 1M dataset's 30 days, and ten times the plays over ten times
# the days with twice the song files. A night adds one day of about 33,000 events to either.
HISTORIES = ((50_000, 1_000_000, 30), (100_000, 10_000_000, 300))


def history_folder(songs: int, events: int, days: int) -> Path:
    return ROOT / "build" / "bench" / (f"{songs}-{events}" + (f"-{days}d" if days != 30 else ""))


def warm(data: Path) -> None:
    """Read every file once, so every contender starts from the same (cached) disk state."""
    for p in data.rglob("*.json"):
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass


@dataclass
class Result:
    name: str
    events: int
    runs: dict[str, list[Timing]] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    # The pipeline's own account of each run: its work (CPU-s, workers included) and its span (s).
    work: dict[str, list[float]] = field(default_factory=dict)
    spans: dict[str, list[float]] = field(default_factory=dict)

    def median(self, who: str) -> float:
        return statistics.median(t.wall for t in self.runs[who]) if self.runs[who] else float("nan")


PARSE_ALONE = "the pipeline's parse alone"
# The pipeline as configured runs in one process below four cores and in workers from four up: the other way
# too, so each machine shows both.
CORES = len(os.sched_getaffinity(0))
OTHER_WORKERS = 1 if CORES >= 4 else CORES
OTHER = "pipeline, one process" if OTHER_WORKERS == 1 else f"pipeline, {OTHER_WORKERS} workers"
CONTENDERS = ("pipeline", OTHER, PARSE_ALONE, "hand-tuned DuckDB", "plain DuckDB read_json")


def pin(cpus: str) -> None:
    """Every contender on ``cpus`` only (``0,1`` or ``0-7``), as ``taskset`` would: the machine with fewer cores."""
    global CORES, OTHER_WORKERS, OTHER, CONTENDERS
    chosen: set[int] = set()
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        chosen |= set(range(int(lo), int(hi or lo) + 1))
    os.sched_setaffinity(0, chosen)  # inherited by every process the bench starts
    CORES = len(chosen)
    OTHER_WORKERS = 1 if CORES >= 4 else CORES
    OTHER = "pipeline, one process" if OTHER_WORKERS == 1 else f"pipeline, {OTHER_WORKERS} workers"
    CONTENDERS = ("pipeline", OTHER, PARSE_ALONE, "hand-tuned DuckDB", "plain DuckDB read_json")


PIPELINE_RUN = [sys.executable, "-m", "pipeline", "run", "--json", "-q", "-c", "config.yaml"]


def pipeline_env(songs: Path, logs: Path, tmp: str) -> dict[str, str]:
    """The pipeline on ``songs`` and ``logs``, with its warehouse and every file it writes under ``tmp``."""
    env = dict(os.environ)
    env.update(
        {
            "SPARKIFY__SOURCE__SONG_DATA": str(songs),
            "SPARKIFY__SOURCE__LOG_DATA": str(logs),
            "SPARKIFY__WAREHOUSE__DUCKDB__PATH": f"{tmp}/pipeline.duckdb",
            "SPARKIFY__STAGING__PATH": f"{tmp}/staging",
            "SPARKIFY__REJECTS__PATH": f"{tmp}/rejects",
            "SPARKIFY__RUN__LOCK_PATH": f"{tmp}/run.lock",
            "SPARKIFY__RUN__METRICS_PATH": f"{tmp}/sparkify.prom",
            "SPARKIFY__DEMO__GENERATE_IF_EMPTY": "false",
        }
    )
    return env


@dataclass
class Night:
    history: str
    plays_before: int
    runs: list[Timing]

    def median(self) -> float:
        return statistics.median(t.wall for t in self.runs)


def nightly(data: Path, repeat: int) -> Night:
    """A night that adds the last log day to a warehouse already holding every earlier day (the same
    warehouse, copied afresh for each run): what cron does every night."""
    warm(data)
    days = sorted((data / "log_data").rglob("*.json"))
    tmp = tempfile.mkdtemp(prefix="sparkify-bench-nightly-")
    try:
        logs = Path(tmp) / "log_data"
        logs.mkdir()
        for day in days[:-1]:
            (logs / day.name).symlink_to(day.resolve())  # absolute: a relative target would dangle here
        env = pipeline_env(data / "song_data", logs, tmp)
        before = json.loads(run(PIPELINE_RUN, env).out)  # the warehouse before the night (untimed)
        warm(data)  # building it read gigabytes: the listing's folders and files cached again, as on any night
        plays = before["rows_total"]["songplays"]
        base = f"{tmp}/before-the-night.duckdb"
        shutil.copyfile(f"{tmp}/pipeline.duckdb", base)
        (logs / days[-1].name).symlink_to(days[-1].resolve())
        print(
            f"\n== a night: {days[-1].name} added to {len(days) - 1} days of {data.name} ({plays:,} plays) ==",
            flush=True,
        )
        timings = []
        for i in range(repeat):
            shutil.copyfile(base, f"{tmp}/pipeline.duckdb")
            os.sync()  # the copy's half a gigabyte on disk first: the night's own fsync must not write it
            t = run(PIPELINE_RUN, env)
            timings.append(t)
            summary = json.loads(t.out)
            if summary["files_read"].get("log_data") != 1 or not summary["records_read"].get("log_data"):
                sys.exit(f"the night read {summary['files_read']} files, not the day added: {t.out}")
            if summary["checks"] != "night":
                sys.exit(f"the night audited instead of checking what it wrote: {t.out}")
            seconds = summary["seconds"]
            print(
                f"  run {i + 1} nightly {t.wall:>7.2f} s  peak {t.peak_mb:>6,.0f} MB  ("
                + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
                + f"; {summary['workers']} worker(s))",
                flush=True,
            )
        print(f"  median wall {statistics.median(t.wall for t in timings):.2f} s (target under 2 s)")
        return Night(data.name, plays, timings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def commands(repeat: int) -> dict[str, list[float]]:
    """Commands that transform nothing, on an empty warehouse: from the shell prompt back to it."""
    tmp = tempfile.mkdtemp(prefix="sparkify-bench-commands-")
    try:
        env = pipeline_env(Path(tmp) / "song_data", Path(tmp) / "log_data", tmp)
        run([sys.executable, "-m", "pipeline", "create-schema"], env)
        print("\n== commands that transform nothing (empty warehouse; target under 0.3 s) ==", flush=True)
        out = {}
        for args in (["--help"], ["config"], ["runs"], ["check"]):
            walls = [run([sys.executable, "-m", "pipeline", *args], env).wall for _ in range(repeat)]
            print(f"  {' '.join(args):<8} " + ", ".join(f"{w:.2f}" for w in walls) + " s", flush=True)
            out[" ".join(args)] = walls
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_parse_alone(parsed: dict[str, int], summary: dict) -> None:
    """The parse alone must have parsed what the run read, or its time bounds nothing."""
    expected = {
        "records": summary["records_read"].get("log_data", 0),
        "rejected": summary["records_rejected"].get("log_data", 0),
    }
    if {k: parsed[k] for k in expected} != expected:
        sys.exit(f"the parse alone read {parsed}, the run {expected}: not the same work")


def measure(name: str, data: Path, repeat: int) -> Result:
    """Every contender ``repeat`` times on one dataset, alternated; prints each run and the medians."""
    warm(data)
    events = sum(p.read_bytes().count(b"\n") + 1 for p in (data / "log_data").rglob("*.json"))
    result = Result(name, events, {c: [] for c in CONTENDERS})
    songs_glob = str(data / "song_data" / "*" / "*" / "*" / "*.json")
    logs_glob = str(data / "log_data" / "*" / "*" / "*.json")
    print(f"\n== {name}: {data} ({events:,} events) ==", flush=True)
    for i in range(repeat):
        for who in CONTENDERS:
            if who.startswith("plain") and i > 0 and events > 2_000_000:
                continue  # minutes and gigabytes a run at 10M: once is enough for the yardstick
            tmp = tempfile.mkdtemp(prefix="sparkify-bench-")
            try:
                env = pipeline_env(data / "song_data", data / "log_data", tmp)
                if who == "pipeline":
                    cmd = PIPELINE_RUN
                elif who == OTHER:
                    cmd = PIPELINE_RUN
                    env["SPARKIFY__RUN__WORKERS"] = str(OTHER_WORKERS)
                elif who == PARSE_ALONE:
                    cmd = [sys.executable, "-m", "tests.benchmarks.parse_floor"]
                else:
                    module = "duckdb_hand_tuned" if who.startswith("hand") else "duckdb_sql_build"
                    cmd = [sys.executable, "-m", f"tests.benchmarks.{module}", songs_glob, logs_glob, f"{tmp}/x.duckdb"]
                t = run(cmd, env)
                result.runs[who].append(t)
                extra = ""
                if who in ("pipeline", OTHER):
                    summary = json.loads(t.out)
                    result.spans.setdefault(who, []).append(summary["span_seconds"])
                    result.work.setdefault(who, []).append(summary["work_seconds"])
                    extra = (
                        f"  work {summary['work_seconds']:.1f} CPU-s, span {summary['span_seconds']:.2f} s, "
                        f"{summary['workers']} worker(s)"
                    )
                    if who == "pipeline":
                        result.summary = summary
                elif who == PARSE_ALONE:
                    check_parse_alone(json.loads(t.out), result.summary)
                else:  # one process: the kernel's count is the whole work
                    extra = f"  work {t.cpu:.1f} CPU-s"
                print(
                    f"  run {i + 1} {who:<27} {t.wall:>7.2f} s  peak {t.peak_mb:>6,.0f} MB sampled, "
                    f"{t.maxrss_mb:>6,.0f} MB by the kernel{extra}",
                    flush=True,
                )
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    s = result.summary
    print("  pipeline stages (last run): " + ", ".join(f"{k} {v:.2f}" for k, v in s["seconds"].items()))
    print("  pipeline per-stage peak MB: " + ", ".join(f"{k} {v:,.0f}" for k, v in s["peak_memory_mb"].items()))
    pipe, one, parse, hand, plain = (result.median(c) for c in CONTENDERS)
    peak = max(t.peak_mb for t in result.runs["pipeline"])
    print(
        f"  median wall: pipeline {pipe:.2f} s ({result.summary.get('workers')} worker(s); {OTHER} {one:.2f} s), "
        f"the pipeline's parse alone {parse:.2f} s, "
        f"hand-tuned {hand:.2f} s, plain {plain:.2f} s; "
        f"pipeline / hand-tuned = {pipe / hand:.2f}x (target 1.0x or less on 16 cores, 0.7x the aim), "
        f"parse alone / hand-tuned = {parse / hand:.2f}x, pipeline / plain = {pipe / plain:.2f}x; "
        f"pipeline peak {peak:,.0f} MB"
    )
    return result


def machine() -> dict[str, object]:
    """What the figures were measured on: they mean nothing without it."""
    import platform

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        model = names[0] if names else ""
    return {
        "cores": os.cpu_count(),
        "cores_used": CORES,
        "cpu": model or platform.processor(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(results: list[Result], nights: list[Night], light: dict[str, list[float]]) -> dict[str, Any]:
    """One JSON file per bench run, under build/bench/results/, named by time and commit: the current table in
    docs/performance.md is rendered from it (``render``), never typed by hand."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    body = {
        "commit": commit,
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "started": stamp,
        "machine": machine(),
        "workloads": [
            {
                "name": r.name,
                "events": r.events,
                "contenders": list(CONTENDERS),
                "wall_s": {c: [round(t.wall, 3) for t in r.runs[c]] for c in CONTENDERS},
                "peak_mb": {c: [round(t.peak_mb) for t in r.runs[c]] for c in CONTENDERS},
                "pipeline_seconds_by_stage": r.summary.get("seconds", {}),
                "pipeline_workers": r.summary.get("workers"),
                "work_cpu_s": r.work,
                "span_s": r.spans,
                # Workers are forked by a fork server, not by the process the kernel counts: pipeline rows report their
                # own work above.
                "cpu_s_by_the_kernel": {c: [round(t.cpu, 2) for t in r.runs[c]] for c in CONTENDERS[2:]},
            }
            for r in results
        ],
        "nights": [
            {
                "history": n.history,
                "plays_before": n.plays_before,
                "wall_s": [round(t.wall, 3) for t in n.runs],
                "peak_mb": [round(t.peak_mb) for t in n.runs],
                "seconds_by_stage": [json.loads(t.out)["seconds"] for t in n.runs],
            }
            for n in nights
        ],
        "commands_wall_s": {k: [round(w, 3) for w in v] for k, v in light.items()},
    }
    out = ROOT / "build" / "bench" / "results" / f"{stamp}-{commit}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body, indent=2) + "\n")
    print(f"\nresults written to {out.relative_to(ROOT)}")
    return body


def _runs(values: list[float], unit: str = " s") -> str:
    return ", ".join(f"{v:.2f}" for v in values) + unit if values else "-"


def render(body: dict[str, Any]) -> str:
    """The current table, in Markdown, from one results file."""
    m = body["machine"]
    lines = [
        f"Measured by `make bench` of commit `{body['commit']}`"
        + (" (with uncommitted changes)" if body["uncommitted_changes"] else "")
        + f", {body['started']}, on {m['cores_used']} of {m['cores']} cores ({m['cpu']}, {m['memory_gb']} GB,"
        f" Python {m['python']}); written by the bench itself from `build/bench/results/`.",
        "",
        "| workload | contender | wall, each run | median / hand-tuned | work (CPU-s) | span | peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in body["workloads"]:
        hand = statistics.median(w["wall_s"]["hand-tuned DuckDB"])
        for c in w["contenders"]:
            walls = w["wall_s"][c]
            if not walls:
                continue
            work = w["work_cpu_s"].get(c) or w["cpu_s_by_the_kernel"].get(c, [])
            lines.append(
                f"| {w['name']} | {c} | {_runs(walls)} | {statistics.median(walls) / hand:.2f}x "
                f"| {_runs(work, '')} | {_runs(w['span_s'].get(c, []))} | {max(w['peak_mb'][c]):,} MB |"
            )
    lines += ["", "| a night: one day added to | wall, each run | prepare | load | peak |", "|---|---|---|---|---|"]
    for n in body["nights"]:
        prepare, load = ([s.get(k, 0.0) for s in n["seconds_by_stage"]] for k in ("prepare", "load"))
        lines.append(
            f"| {n['history']} ({n['plays_before']:,} plays) | {_runs(n['wall_s'])} | {_runs(prepare)} "
            f"| {_runs(load)} | {max(n['peak_mb']):,} MB |"
        )
    if len(body["nights"]) > 1:
        first, last = (statistics.median(n["wall_s"]) for n in (body["nights"][0], body["nights"][-1]))
        lines += ["", f"The night on the larger history takes {last / first:.2f}x the night on the smaller."]
    lines += ["", "| command (empty warehouse) | wall, each run |", "|---|---|"]
    lines += [f"| `{k}` | {_runs(v)} |" for k, v in body["commands_wall_s"].items()]
    return "\n".join(lines) + "\n"


CURRENT = ("<!-- bench:current -->", "<!-- /bench:current -->")


def update_docs(body: dict[str, Any]) -> None:
    """Replace the current table in docs/performance.md with this run's."""
    page = ROOT / "docs" / "performance.md"
    text = page.read_text()
    head, _, rest = text.partition(CURRENT[0])
    _, _, tail = rest.partition(CURRENT[1])
    page.write_text(f"{head}{CURRENT[0]}\n{render(body)}{CURRENT[1]}{tail}")
    print(f"current table written to {page.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=50_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each contender, alternated (default 3)")
    ap.add_argument("--data", help="dataset folder (default build/bench/<songs>-<events>, generated if missing)")
    ap.add_argument("--scale", action="store_true", help="the real sample, 15k songs/8k events, 1M and 10M events")
    ap.add_argument("--cpus", help="run every contender on these CPUs only (e.g. 0,1 or 0-7): fewer cores")
    ap.add_argument("--update-docs", action="store_true", help="write the current table into docs/performance.md")
    args = ap.parse_args()
    if args.cpus:
        pin(args.cpus)

    if args.scale:
        sets = [("the real sample", SAMPLE)]
        for songs, events in ((15_000, 8_000), (50_000, 1_000_000), (100_000, 10_000_000)):
            folder = ROOT / "build" / "bench" / f"{songs}-{events}"
            ensure_data(folder, songs, events)
            sets.append((f"{songs:,} songs, {events:,} events", folder))
    else:
        data = Path(args.data) if args.data else ROOT / "build" / "bench" / f"{args.songs}-{args.events}"
        ensure_data(data, args.songs, args.events)
        sets = [(data.resolve().name if args.data else f"{args.songs:,} songs, {args.events:,} events", data)]
    results = [measure(name, folder, args.repeat) for name, folder in sets]
    nights = []
    for songs, events, days in HISTORIES:
        folder = history_folder(songs, events, days)
        ensure_data(folder, songs, events, days)
        nights.append(nightly(folder, args.repeat))
    first, last = nights[0].median(), nights[-1].median()
    print(
        f"\nnight on {nights[-1].history} / night on {nights[0].history}: {last / first:.2f}x "
        "(target 1.2x, both under 2 s)"
    )
    body = write_results(results, nights, commands(args.repeat))
    print("\n" + render(body))
    if args.update_docs:
        update_docs(body)


if __name__ == "__main__":
    main()
